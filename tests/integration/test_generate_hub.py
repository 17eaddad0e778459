"""Loading through the Hub protocol: the tiny model published to the test Hub under a tag, its
tokenizer in another repo, loaded by `generate --model ns/tiny --revision rkt-multiplt-epoch1
--tokenizer ns/tiny-base` with the real huggingface_hub client (no mock of from_pretrained)."""

import os
import shutil

import pytest

from multiplt import cli, storage
from multiplt.generation import folder

pytestmark = pytest.mark.slow
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def test_generate_from_hub_tag_with_separate_tokenizer(test_hub, tiny_model, tmp_path):
    from huggingface_hub import HfApi

    weights, tok = tmp_path / "weights", tmp_path / "tok"
    weights.mkdir(), tok.mkdir()
    for name in os.listdir(tiny_model):
        shutil.copy(os.path.join(tiny_model, name), (tok if name in TOKENIZER_FILES else weights) / name)
    api = HfApi()
    api.create_repo("ns/tiny-base")
    api.upload_folder(folder_path=str(tok), repo_id="ns/tiny-base")
    api.create_repo("ns/tiny")
    epoch1 = api.upload_folder(folder_path=str(weights), repo_id="ns/tiny", commit_message="rkt-multiplt-epoch1")
    api.create_tag("ns/tiny", tag="rkt-multiplt-epoch1", revision=epoch1.oid)
    # main moves on to a commit that cannot load: only the tag gives a working model
    api.delete_file("model.safetensors", repo_id="ns/tiny", commit_message="epoch2 in progress")

    bench = str(tmp_path / "bench.jsonl")
    storage.write_jsonl(bench, [{"name": "HumanEval_0_add", "language": "rkt",
                                 "prompt": "#lang racket\n(define (add x y)\n", "tests": "",
                                 "stop_tokens": ["\n(define "]}])
    common = ["--benchmark", bench, "--n", "2", "--max-new-tokens", "8", "--temperature", "0.8"]
    hub_out, local_out = str(tmp_path / "hub"), str(tmp_path / "local")
    assert cli.main(["generate", *common, "--model", "ns/tiny", "--revision", "rkt-multiplt-epoch1",
                     "--tokenizer", "ns/tiny-base", "--out", hub_out]) == 0
    run = folder.read_run(hub_out)
    assert run["revision"] == "rkt-multiplt-epoch1" and run["resolved_commit"] == epoch1.oid
    assert run["tokenizer"] == "ns/tiny-base"
    # the same weights loaded from the local folder sample the same completions
    assert cli.main(["generate", *common, "--model", tiny_model, "--out", local_out]) == 0
    read = lambda out: storage.read_json(folder.problem_uri(out, "HumanEval_0_add"))["completions"]  # noqa: E731
    assert read(hub_out) == read(local_out)
    assert ("GET", "/api/models/ns/tiny/revision/rkt-multiplt-epoch1") in test_hub.requests
    # an unknown tag is one clear error
    assert cli.main(["generate", *common, "--model", "ns/tiny", "--revision", "rkt-x-epoch9",
                     "--tokenizer", "ns/tiny-base", "--out", str(tmp_path / "bad")]) == 2
