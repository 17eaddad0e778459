"""`multiplt evaluate` checks every flag before any work (docs/generation.md): a --model or
--tokenizer the backend cannot load, or a replay source it would refuse, is one error, exit 2,
before a benchmark is built (a build of every problem of the language takes seconds) or
anything is written. Local paths only (no Hub look-up)."""

import json

import pytest

from multiplt import cli
from multiplt.benchmarks import build


@pytest.fixture
def no_build(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("a benchmark was built")

    monkeypatch.setattr(build, "build_benchmark", never)


def evaluate(out, *extra):
    return cli.main(["evaluate", "--lang", "rkt", "--n", "1", "--max-new-tokens", "4", "--limit", "1",
                     "--out", str(out), *extra])


def test_a_model_that_cannot_load_is_refused_before_the_build(tmp_path, capsys, no_build):
    out, missing = tmp_path / "ev", tmp_path / "nosuchdir"
    assert evaluate(out, "--model", str(missing)) == 2
    assert capsys.readouterr().err == f"multiplt evaluate: error: model {str(missing)!r} is not a model folder\n"
    model = tmp_path / "model"
    model.mkdir()
    assert evaluate(out, "--model", str(model)) == 2
    assert f"{model} holds no model: no config.json in {model}" in capsys.readouterr().err
    (model / "config.json").write_text("{}")  # enough for the check, which loads no weights
    assert evaluate(out, "--model", str(model), "--tokenizer", str(tmp_path / "notok")) == 2
    assert f"tokenizer {str(tmp_path / 'notok')!r} is not a model folder" in capsys.readouterr().err
    assert not out.exists()


def test_a_replay_source_it_would_refuse_is_refused_before_the_build(tmp_path, capsys, no_build):
    out = tmp_path / "ev"
    (tmp_path / "replay-rkt.jsonl").write_text(json.dumps({"name": "p", "completion": 5}) + "\n")
    for source, message in ((tmp_path / "replay-{lang}.jsonl",
                             f"replay source {tmp_path / 'replay-rkt.jsonl'} record 1: completions must be strings"),
                            (tmp_path / "none-{lang}", f"replay source {tmp_path / 'none-rkt'} does not exist")):
        assert evaluate(out, "--backend", "replay", "--replay-source", str(source)) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("error:") == 1
    assert not out.exists()
