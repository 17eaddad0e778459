"""`multiplt generate` with the tiny local model: files, resumption and the rerun contract."""

import os

import pytest

from multiplt import cli, storage
from multiplt.generation import folder
from multiplt.generation.hf_backend import TransformersBackend

pytestmark = pytest.mark.slow

PROBLEMS = [
    {"name": "HumanEval_0_add", "language": "rkt", "prompt": "#lang racket\n\n;; add x and y\n(define (add x y)\n",
     "tests": "(module+ test)\n", "stop_tokens": ["\n(define ", "\n#|", "\n;", "\n("]},
    {"name": "HumanEval_1_double", "language": "rkt",
     "prompt": "#lang racket\n\n;; Double every element of the list\n;; >>> (double (list 1 2))\n(define (double xs)\n",
     "tests": "(module+ test)\n", "stop_tokens": ["\n(define ", "\n#|", "\n;", "\n("]},
]


@pytest.fixture
def bench(tmp_path):
    uri = str(tmp_path / "bench.jsonl")
    storage.write_jsonl(uri, PROBLEMS)
    return uri


def gen(bench, out, model, *extra):
    argv = ["generate", "--benchmark", bench, "--model", model, "--out", out, "--n", "3",
            "--temperature", "0.8", "--max-new-tokens", "12", "--batch-size", "2", "--seed", "7", *extra]
    return cli.main(argv)


def completions(out):
    return {storage.basename(u): storage.read_json(u)["completions"]
            for u in storage.ls(out) if u.endswith(".json.gz")}


def test_interrupted_run_resumes_to_the_same_samples(bench, tmp_path, tiny_model, monkeypatch):
    whole = str(tmp_path / "whole")
    assert gen(bench, whole, tiny_model) == 0
    expected = completions(whole)
    assert sorted(expected) == ["HumanEval_0_add.json.gz", "HumanEval_1_double.json.gz"]
    assert all(len(c) == 3 for c in expected.values())
    run = folder.read_run(whole)
    assert run["model"] == tiny_model and run["n"] == 3 and run["seed"] == 7

    # interrupt after the first batch, then rerun with a different batch size
    real = TransformersBackend.generate

    def first_batch_then_interrupt(self, requests, sampling):
        for group in real(self, requests, sampling):
            yield group
            raise KeyboardInterrupt

    part = str(tmp_path / "part")
    monkeypatch.setattr(TransformersBackend, "generate", first_batch_then_interrupt)
    assert gen(bench, part, tiny_model) == 130
    partial = completions(part)
    assert 0 < sum(map(len, partial.values())) < 6
    monkeypatch.setattr(TransformersBackend, "generate", real)
    assert gen(bench, part, tiny_model, "--batch-size", "3") == 0
    assert completions(part) == expected


def test_rerun_writes_nothing_and_changed_settings_fail(bench, tmp_path, tiny_model, capsys):
    out = str(tmp_path / "run")
    assert gen(bench, out, tiny_model, "--limit", "1") == 0
    before = {u: storage.read_bytes(u) for u in storage.ls(out)}
    mtimes = {u: os.stat(storage.local_path(u)).st_mtime_ns for u in before}
    assert gen(bench, out, tiny_model, "--limit", "1") == 0
    assert {u: os.stat(storage.local_path(u)).st_mtime_ns for u in before} == mtimes
    assert gen(bench, out, tiny_model, "--limit", "1", "--top-p", "0.5") == 2
    assert "top_p" in capsys.readouterr().err
    for rec in completions(out).values():
        assert all("\n(define " not in c and "\n;" not in c for c in rec)


@pytest.mark.parametrize("content", [None, b'{"added_tokens": []}'], ids=["truncated", "wrong-shape"])
def test_a_corrupt_tokenizer_is_one_error_and_nothing_is_written(bench, tmp_path, tiny_model, capsys, content):
    """A model folder whose tokenizer.json is truncated or valid JSON of the wrong shape (the
    tokenizers library's plain Exception): exit 2 with one line naming the file, no output folder."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    tokenizer_json = model / "tokenizer.json"
    tokenizer_json.write_bytes(content if content is not None else tokenizer_json.read_bytes()[:200])
    out = tmp_path / "run"
    assert gen(bench, str(out), str(model)) == 2
    err = capsys.readouterr().err
    assert f"error: cannot load the tokenizer of {str(model)!r}: {tokenizer_json} is corrupt" in err
    assert err.count("error:") == 1 and "Traceback" not in err and not out.exists()
    # the same as --tokenizer of a sound model
    assert gen(bench, str(out), tiny_model, "--tokenizer", str(model)) == 2
    assert f"{tokenizer_json} is corrupt" in capsys.readouterr().err and not out.exists()
