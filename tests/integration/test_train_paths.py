"""Training outputs named by relative paths and file:// URIs, chained training (a base that is a
training output at a tag), and inputs that must fail before anything is written: a tokenizer whose
ids the model has no embeddings for, a truncated base model, a corrupt tokenizer.json."""

import os
import pathlib
import shutil

import pytest
import yaml

from multiplt import cli, storage
from multiplt.generation import model_source
from multiplt.storage import manifest
from tests.integration.test_train import one_torch_thread, racket_documents  # noqa: F401 (an autouse fixture)

pytestmark = pytest.mark.slow

TINY = ["--seq-len", "64", "--batch-size", "4", "--micro-batch-size", "2", "--warmup-steps", "1",
        "--lr", "1e-3", "--eval-fraction", "0.1", "--log-every", "50", "--epochs", "1"]


def test_relative_out_dataset_and_base_then_revision_and_chained_base(tiny_model, tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    work, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    storage.write_jsonl(str(work / "racket.jsonl"), [{"content": d} for d in racket_documents(40)])
    shutil.copytree(tiny_model, work / "base")
    monkeypatch.chdir(work)
    # Relative --dataset, --base and --out: stored absolute (manifest rows and run config).
    argv = ["train", "--dataset", "racket.jsonl", "--base", "base", "--lang", "rkt", "--experiment", "x",
            "--out", "out1", *TINY]
    assert cli.main(argv) == 0
    out1 = str(work / "out1")
    [row] = manifest.read(out1)
    assert row["uri"] == f"{out1}/checkpoints/rkt-x-epoch1"
    assert row["state_uri"] == f"{out1}/state/rkt-x-epoch1"
    assert row["base"] == str(work / "base") and row["base_revision"] is None
    assert row["tokenizer"] == row["uri"]
    saved = yaml.safe_load(open(os.path.join(out1, "_multiplt_train.yaml")))["config"]
    assert (saved["out"], saved["dataset"], saved["base"]) == (out1, str(work / "racket.jsonl"),
                                                                str(work / "base"))

    # The same output spelled otherwise, and the dataset given absolute / as file://: one run, all done.
    before = storage.read_bytes(storage.join(out1, "manifest.jsonl"))
    for out, dataset in (("out1/", str(work / "racket.jsonl")), (f"file://{out1}", f"file://{work}/racket.jsonl"),
                         (out1 + "/", "./racket.jsonl")):
        assert cli.main(argv[:1] + ["--dataset", dataset] + argv[3:9] + ["--out", out, *TINY]) == 0, out
    assert storage.read_bytes(storage.join(out1, "manifest.jsonl")) == before

    # From another folder: `--model OUT --revision TAG`, as a relative path and a file:// URI.
    monkeypatch.chdir(elsewhere)
    for model in (out1, "../here/out1", f"file://{out1}"):
        resolved = model_source.resolve_model(model, "rkt-x-epoch1")
        assert resolved.path == row["uri"] and resolved.checkpoint_uri == row["uri"], model

    # Chained: --base OUT1 --base-revision TAG (relative). The row's tokenizer loads; base_revision is kept.
    monkeypatch.chdir(work)
    assert cli.main(["train", "--dataset", "racket.jsonl", "--base", "out1", "--base-revision", "rkt-x-epoch1",
                     "--lang", "rkt", "--experiment", "y", "--out", str(tmp_path / "out2"), *TINY]) == 0
    [row2] = manifest.read(str(tmp_path / "out2"))
    assert (row2["base"], row2["base_revision"]) == (out1, "rkt-x-epoch1")
    monkeypatch.chdir(elsewhere)
    tok = AutoTokenizer.from_pretrained(model_source.resolve_model(row2["tokenizer"], what="tokenizer").path)
    assert tok("(define x 1)")["input_ids"]


def test_inputs_that_cannot_train_fail_before_anything_is_written(tiny_model, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    data = tmp_path / "racket.jsonl"
    storage.write_jsonl(str(data), [{"content": d} for d in racket_documents(20)])
    out = tmp_path / "out"
    argv = ["train", "--dataset", str(data), "--lang", "rkt", "--experiment", "x", "--out", str(out), *TINY]

    # A model with fewer embeddings than the tokenizer's ids (4 rows): a clear error, not an IndexError.
    small = tmp_path / "small"
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    model.resize_token_embeddings(4)
    model.save_pretrained(small)
    assert cli.main(argv + ["--base", str(small), "--tokenizer", tiny_model]) == 2
    err = capsys.readouterr().err
    assert "has only 4 input embeddings" in err and f"the tokenizer {tiny_model!r} gives token id" in err
    assert "Traceback" not in err and not out.exists()

    # A truncated base model.safetensors: an input error naming the base.
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:3])
    assert cli.main(argv + ["--base", str(broken)]) == 2
    err = capsys.readouterr().err
    assert f"cannot load the base model {str(broken)!r}" in err and "Traceback" not in err
    assert not out.exists()

    # A base whose tokenizer.json is truncated, and a --tokenizer that is valid JSON of the wrong
    # shape (the tokenizers library's plain Exception): an input error naming the file.
    weights.write_bytes((pathlib.Path(tiny_model) / "model.safetensors").read_bytes())
    tokenizer_json = broken / "tokenizer.json"
    tokenizer_json.write_bytes(tokenizer_json.read_bytes()[:200])
    assert cli.main(argv + ["--base", str(broken)]) == 2
    err = capsys.readouterr().err
    assert f"cannot load the tokenizer of {str(broken)!r}: {tokenizer_json} is corrupt: not valid JSON" in err
    assert "Traceback" not in err and not out.exists()
    tokenizer_json.write_text('{"added_tokens": []}')
    assert cli.main(argv + ["--base", tiny_model, "--tokenizer", str(broken)]) == 2
    err = capsys.readouterr().err
    assert f"{tokenizer_json} is corrupt: not a tokenizer the tokenizers library reads (Model missing" in err
    assert "Traceback" not in err and not out.exists()
