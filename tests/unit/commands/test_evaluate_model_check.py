"""`multiplt evaluate` checks every flag before any work (docs/generation.md): a --model or
--tokenizer the backend cannot load, or a replay source it would refuse, is one error, exit 2,
before a benchmark is built (a build of every problem of the language takes seconds) or
anything is written. Local paths only (no Hub look-up)."""

import json

import pytest

from multiplt import cli
from multiplt.benchmarks import build
from tests.unit.execution.helpers import installed

needs_lua = pytest.mark.skipif(not installed("lua"), reason="lua runtime not installed")


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


@needs_lua
def test_a_finished_run_is_scored_again_without_its_replay_source(tmp_path, capsys):
    """A rerun whose run folder already holds --n completions of every problem samples nothing,
    so it needs no model or replay source (a moved model, a Hub model offline): it executes and
    scores again. One that still needs samples (a larger --n) checks the source first."""
    bench = tmp_path / "ev" / "benchmarks"
    bench.mkdir(parents=True)
    (bench / "humaneval-lua.jsonl").write_text(json.dumps(
        {"name": "HumanEval_0_f", "language": "lua", "prompt": "local function f(x)\n",
         "tests": "", "stop_tokens": ["\nend"]}) + "\n")
    replay = tmp_path / "replay-{lang}.jsonl"
    (tmp_path / "replay-lua.jsonl").write_text(json.dumps(
        {"name": "HumanEval_0_f", "completion": "  return x"}) + "\n")

    def lua(*extra):
        return cli.main(["evaluate", "--lang", "lua", "--n", "1", "--max-new-tokens", "4",
                         "--out", str(tmp_path / "ev"), "--backend", "replay", "--replay-source",
                         str(replay), *extra])

    assert lua() == 0
    first = capsys.readouterr().out
    (tmp_path / "replay-lua.jsonl").rename(tmp_path / "moved.jsonl")
    assert lua() == 0, capsys.readouterr().err
    assert capsys.readouterr().out == first  # the same table, scored again
    assert lua("--n", "2", "--k", "1") == 2
    assert f"replay source {tmp_path / 'replay-lua.jsonl'} does not exist" in capsys.readouterr().err


@pytest.mark.slow
@needs_lua
def test_a_finished_run_is_scored_again_without_its_model(tiny_model, tmp_path, monkeypatch, capsys):
    """The reviewer's case: `evaluate --model ./tiny`, the model moved away, the same evaluate
    again executes and scores the run without the model."""
    import shutil

    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_model, tmp_path / "tiny")
    argv = ["evaluate", "--lang", "lua", "--limit", "1", "--n", "1", "--max-new-tokens", "8",
            "--out", "ev", "--model", "./tiny"]
    assert cli.main(argv) == 0
    first = capsys.readouterr().out
    (tmp_path / "tiny").rename(tmp_path / "tiny.moved")
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert capsys.readouterr().out == first
    assert cli.main([*argv, "--n", "2"]) == 2
    assert "model './tiny' is not a model folder" in capsys.readouterr().err


def test_a_language_whose_runtime_is_missing_is_refused_before_the_build(tmp_path, capsys, no_build,
                                                                        monkeypatch):
    """As translate: every language of --lang without its runtime named in one line, exit 2,
    before a benchmark is built or a sample drawn (not after the other languages' GPU time)."""
    from multiplt.execution import preflight

    absent = {"jl": ["julia"], "lua": ["lua5.4"]}  # as on a machine without Julia and Lua
    monkeypatch.setattr(preflight, "missing_binaries", lambda lang, unsafe=False: absent.get(lang.code, []))
    (tmp_path / "replay-rkt.jsonl").write_text(json.dumps({"name": "p", "completion": "x"}) + "\n")
    out = tmp_path / "ev"
    code = cli.main(["evaluate", "--lang", "rkt,jl,lua", "--n", "1", "--limit", "1", "--out", str(out),
                     "--backend", "replay", "--replay-source", str(tmp_path / "replay-rkt.jsonl")])
    err = capsys.readouterr().err
    assert code == 2
    assert ("--lang: the completions of julia (jl: julia not installed), lua (lua: lua5.4 not "
            "installed) cannot run") in err
    assert err.count("\n") == 1 and not out.exists()
