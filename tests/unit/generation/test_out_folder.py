"""`multiplt generate --out`: a folder without a run record that holds files is refused (a foreign
`<name>.json.gz` would be executed and scored with the run's problems), and so is a file, both
before a backend (a model) is loaded; an empty folder and a run's own folder are accepted."""

import gzip
import json

import pytest

from multiplt import cli
from multiplt.errors import MultipltError
from multiplt.generation import driver
from multiplt.generation.driver import generate


def gen(bench, out, *extra):
    uri, replay = bench
    return cli.main(["generate", "--benchmark", uri, "--out", str(out), "--backend", "replay",
                     "--replay-source", replay, "--model", "replayed", "--n", "2", *extra])


@pytest.fixture
def no_backend(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("a backend was made")
    monkeypatch.setattr(driver, "make_backend", never)


def test_a_folder_with_foreign_files_is_refused_before_the_model(bench, tmp_path, capsys, no_backend):
    out = tmp_path / "g"
    out.mkdir()
    with gzip.open(out / "Foreign_1.json.gz", "wt") as f:
        json.dump({"name": "Foreign_1", "language": "rkt", "prompt": "x", "tests": "y",
                   "completions": ["a", "b"], "stop_tokens": []}, f)
    assert gen(bench, out) == 2
    err = capsys.readouterr().err
    assert (f"{out} holds files this command did not write (e.g. Foreign_1.json.gz); use an empty or new "
            f"folder") in err and err.count("error:") == 1
    assert [p.name for p in out.iterdir()] == ["Foreign_1.json.gz"]
    with pytest.raises(MultipltError, match="holds files this command did not write"):  # the API too
        generate(bench[0], str(out), backend="replay", replay_source=bench[1], model="replayed", n=2)


def test_a_file_is_refused_before_the_model(bench, tmp_path, capsys, no_backend):
    (tmp_path / "afile").write_text("x")
    assert gen(bench, tmp_path / "afile") == 2
    assert f"--out {tmp_path / 'afile'} is a file; give a folder" in capsys.readouterr().err
    with pytest.raises(MultipltError, match=r"afile is a file"):  # evaluate, testgen and translate call this
        generate(bench[0], str(tmp_path / "afile"), backend="replay", replay_source=bench[1], model="r", n=2)
    assert (tmp_path / "afile").read_text() == "x"


def test_an_empty_folder_and_a_runs_own_folder_are_accepted(bench, tmp_path):
    out = tmp_path / "g"
    (out / "made-by-the-runtime").mkdir(parents=True)
    assert gen(bench, out, "--limit", "1") == 0
    assert gen(bench, out) == 0  # its run record is there: more problems
    assert gen(bench, out, "--n", "3") == 0  # and more samples
    (out / "HumanEval_0_f.results.json.gz").write_bytes(gzip.compress(b"{}"))  # what execute adds
    (out / "_scores.csv").write_text("k,pass\n")  # and score
    assert gen(bench, out, "--n", "4") == 0
    assert sorted(p.name for p in out.glob("*.json.gz")) == [
        "HumanEval_0_f.json.gz", "HumanEval_0_f.results.json.gz", "HumanEval_1_f.json.gz", "HumanEval_2_f.json.gz"]
