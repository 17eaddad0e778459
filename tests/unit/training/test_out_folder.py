"""`multiplt train --out`: a folder holding files no training run wrote is refused before the base
model or the data are loaded; an empty folder, and a run's own (its run config, written before
anything else), are accepted."""

import pytest

from multiplt import cli
from multiplt.errors import MultipltError
from multiplt.training import loop


@pytest.fixture
def loading(monkeypatch):
    """Stops a run where it would start loading the base model."""
    def stop(ref, revision, workdir):
        raise MultipltError(f"STOP: would load {ref}")
    monkeypatch.setattr(loop, "materialize", stop)


def train(tmp_path, out):
    (tmp_path / "racket.jsonl").write_text('{"content": "(define x 1)"}\n')
    return cli.main(["train", "--dataset", str(tmp_path / "racket.jsonl"), "--base", "base-model",
                     "--lang", "rkt", "--experiment", "x", "--out", str(out)])


def test_a_folder_with_foreign_files_is_refused_before_loading(tmp_path, capsys, loading):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert train(tmp_path, out) == 2
    err = capsys.readouterr().err
    assert (f"--out {out} holds files this command did not write (e.g. notes.txt); use an empty or new "
            f"folder") in err and "STOP" not in err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_an_empty_folder_and_a_runs_own_are_accepted(tmp_path, capsys, loading):
    out = tmp_path / "out"
    (out / "made-by-the-runtime").mkdir(parents=True)
    assert train(tmp_path, out) == 2
    assert "STOP: would load base-model" in capsys.readouterr().err
    (out / "_multiplt_train.yaml").write_text("config: {}\n")  # a run killed before its first epoch
    (out / "logs").mkdir()
    (out / "logs" / "epoch1.jsonl").write_text("")
    assert train(tmp_path, out) == 2
    assert "STOP: would load base-model" in capsys.readouterr().err


def test_a_base_that_is_no_model_folder_is_refused_as_generate_refuses_it(tmp_path, capsys, monkeypatch):
    """--base and --tokenizer go through generate's model resolver: a missing path and a folder
    without config.json are its errors (not a Hub repo-id message or a cut-off tokenizer error),
    before anything is written (a Hub name is pinned to its commit: test_hub_pins.py)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "racket.jsonl").write_text('{"content": "(define x 1)"}\n')
    (tmp_path / "somefolder").mkdir()
    out = tmp_path / "out"
    argv = ["train", "--dataset", "racket.jsonl", "--lang", "rkt", "--experiment", "x", "--out", str(out)]
    for flags, said in ((["--base", "/nope"], "error: base model '/nope' is not a model folder"),
                        (["--base", "./nope"], "error: base model './nope' is not a model folder"),
                        (["--base", "somefolder"], f"error: {tmp_path / 'somefolder'} holds no model: no "
                                                   f"config.json in {tmp_path / 'somefolder'}"),
                        (["--base", "somefolder", "--tokenizer", "/nope"],
                         f"error: {tmp_path / 'somefolder'} holds no model")):
        assert cli.main(argv + flags) == 2
        err = capsys.readouterr().err
        assert said in err and err.count("error:") == 1 and "Traceback" not in err, err
        assert not out.exists()
    with pytest.raises(MultipltError, match="tokenizer '/nope' is not a model folder"):
        loop.materialize("/nope", "", str(tmp_path), "tokenizer")
    (tmp_path / "somefolder" / "config.json").write_text("{}")
    assert loop.materialize("somefolder", "", str(tmp_path)) == (str(tmp_path / "somefolder"), None)
