"""`--tokenizer NAME` (a Hub repo) is fetched with its tokenizer and config files only: it was
fetched with the model's patterns, so `--tokenizer bigcode/starcoder2-15b` downloaded the
15B model's weights to read its tokenizer (testgen, translate and evaluate check it up front,
the openai backend loads it). Against the test Hub (tests/hub_server.py)."""

from __future__ import annotations

import json
import os

from multiplt.generation import model_source

FILES = {"config.json": b"{}", "tokenizer.json": b"{}", "tokenizer_config.json": b"{}",
         "special_tokens_map.json": b"{}", "vocab.json": b"{}", "merges.txt": b"#version: 0.2\n",
         "tokenizer.model": b"sentencepiece", "model.safetensors": b"weights" * 100,
         "pytorch_model.bin": b"weights" * 100}


def test_a_tokenizer_from_the_hub_is_fetched_without_the_weights(test_hub):
    repo = test_hub.add_model("org/m")
    head = repo.commits[repo.branches["main"]]
    repo.branches["main"] = repo.commit(head.oid, {name: (data, False) for name, data in FILES.items()},
                                        "a model and its tokenizer").oid
    tok = model_source.resolve_model("org/m", what="tokenizer")
    assert sorted(os.listdir(tok.path)) == sorted(n for n in FILES if not n.endswith((".safetensors", ".bin")))
    assert json.loads(open(os.path.join(tok.path, "tokenizer.json")).read()) == {}
    fetched = [path for method, path in test_hub.requests if method == "GET" and "/resolve/" in path]
    assert fetched and not [p for p in fetched if p.endswith((".safetensors", ".bin"))]
    assert tok.resolved_commit == repo.branches["main"]
    # the model itself still comes with its weights
    assert "model.safetensors" in os.listdir(model_source.resolve_model("org/m").path)
