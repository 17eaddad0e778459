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
