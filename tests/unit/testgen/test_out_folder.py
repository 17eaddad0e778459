"""`multiplt testgen --out`: a folder holding files testgen did not write (a parquet file in tests/
would reach translate; a file under work/ that no testgen shard wrote) is refused before any row
is read, and a translate output is named as such; an empty folder, and the shards of one run
writing into one folder, are accepted. Replay backend, generate stage: no sandbox needed. The
asserts do not see --out wherever it is (one test runs them in the sandbox), and an --out the
sandbox cannot hide is refused before anything is written."""

import hashlib
import json
import os
import pathlib
import shutil
import tempfile

import polars as pl
import pytest

from multiplt import cli
from multiplt.execution import view
from multiplt.testgen import inputs

FIXTURE = pathlib.Path(__file__).parents[2] / "fixtures" / "testgen"


def functions(tmp_path) -> str:
    rows = [json.loads(line) for line in (FIXTURE / "functions.jsonl").read_text().splitlines()]
    (tmp_path / "fn" / "functions").mkdir(parents=True)
    pl.DataFrame(rows).write_parquet(tmp_path / "fn" / "functions" / "part-0.parquet")
    return str(tmp_path / "fn")


def run_testgen(fn, out, *extra):
    return cli.main(["testgen", "--functions", fn, "--out", str(out), "--backend", "replay",
                     "--replay-source", str(FIXTURE / "replay.jsonl"), "--n", "2", "--stage", "generate",
                     *extra])


def test_a_folder_with_foreign_files_is_refused_before_reading(tmp_path, monkeypatch, capsys):
    fn = functions(tmp_path)
    out = tmp_path / "tg"
    (out / "tests").mkdir(parents=True)
    (out / "tests" / "mine.parquet").write_text("x")

    def never(uri):
        raise AssertionError(f"{uri} was read")
    monkeypatch.setattr(inputs, "read_functions", never)
    for extra in ([], ["--shard", "0/2"]):
        assert run_testgen(fn, out, *extra) == 2
        err = capsys.readouterr().err
        assert (f"--out {out} holds files this command did not write (e.g. tests/mine.parquet); use an "
                f"empty or new folder") in err and err.count("error:") == 1
    assert [str(p.relative_to(out)) for p in out.rglob("*")] == ["tests", "tests/mine.parquet"]


def test_a_file_under_work_that_no_shard_wrote_does_not_make_a_testgen_folder(tmp_path, capsys):
    fn = functions(tmp_path)
    out = tmp_path / "tg"
    for planted in ("work/notes.txt", "work/shard-all/notes.txt", "work/mine/rows.jsonl"):
        shutil.rmtree(out, ignore_errors=True)
        (out / planted).parent.mkdir(parents=True)
        (out / planted).write_text("x")
        assert run_testgen(fn, out) == 2, planted
        err = capsys.readouterr().err
        assert f"--out {out} holds files this command did not write (e.g. {planted}); use an" in err, err
        assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [planted]


def test_a_translate_output_is_named_as_such(tmp_path, capsys):
    """`translate --stage sample` writes its language's shard under work/ (as testgen writes its
    shards there): testgen names the folder as translate's rather than as a run of another
    shard layout, before anything is read or written."""
    from tests.fixtures import translate as fx

    given = fx.write(tmp_path / "in")
    out = tmp_path / "tr"
    assert cli.main(["translate", "--tests", given["tests"], "--lang", "lua", "--out", str(out),
                     "--backend", "replay", "--replay-source", given["replay"], "--n", str(fx.N),
                     "--stage", "sample"]) == 0
    capsys.readouterr()
    before = sorted(out.rglob("*"))
    assert run_testgen(functions(tmp_path), out) == 2
    err = capsys.readouterr().err
    assert err == (f"multiplt testgen: error: --out {out} holds another command's output (translate's: "
                   "work/lua/0-of-1/), not a testgen run; use an empty or new folder\n")
    assert sorted(out.rglob("*")) == before
    shutil.rmtree(out / "work")  # a translate output without its work folder: its config/ names it
    (out / "config").mkdir()
    (out / "config" / "lua-0-of-1.json").write_text("{}")
    assert run_testgen(functions(tmp_path / "again"), out) == 2
    assert "holds another command's output (translate's: config/lua-0-of-1.json)" in capsys.readouterr().err


def test_an_empty_folder_and_the_shards_of_one_run_are_accepted(tmp_path):
    fn = functions(tmp_path)
    out = tmp_path / "tg"
    (out / "made-by-the-runtime").mkdir(parents=True)
    assert run_testgen(fn, out, "--shard", "0/2") == 0
    assert run_testgen(fn, out, "--shard", "1/2") == 0  # shard 0 wrote into work/ (it may still run)
    assert run_testgen(fn, out, "--shard", "0/2") == 0  # resumed
    assert sorted(p.name for p in (out / "work").iterdir()) == ["shard-00000-of-00002", "shard-00001-of-00002"]


def test_an_out_folder_the_sandbox_cannot_hide_is_refused_before_anything_is_written(
        tmp_path, monkeypatch, capsys):
    fn = functions(tmp_path)
    out = tmp_path / "tg"
    monkeypatch.setattr(view, "unhideable", lambda path: "planted reason" if path == str(out) else None)
    assert run_testgen(fn, out) == 2
    err = capsys.readouterr().err
    assert (f"--out {out}: programs must not see the run's functions, completions and verdicts, but "
            "the sandbox cannot hide this folder (planted reason); use a folder of its own") in err
    assert err.count("error:") == 1 and not out.exists()
    assert run_testgen(fn, out, "--unsafe-no-sandbox") == 0  # no sandbox: nothing to hide


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.isdir("/opt"), reason="plants a folder in /opt")
def test_the_asserts_do_not_see_the_out_folder_wherever_it_is(tmp_path):
    """--out in /opt, which programs otherwise see: the code an assert runs (here the function,
    as an assert's expected value must be a literal) lists it and finds it empty."""
    parent = tempfile.mkdtemp(prefix="multiplt-test-", dir="/opt")
    try:
        os.chmod(parent, 0o755)
        out = os.path.join(parent, "tg")
        content = (f'def same(x):\n    """x itself."""\n    return x + len(__import__("os").listdir({out!r}))\n')
        sha = hashlib.sha1(content.encode()).hexdigest()
        (tmp_path / "fn" / "functions").mkdir(parents=True)
        pl.DataFrame([{"content": content, "id": "planted/same.py:1", "sha1": sha, "entrypoint": "same",
                       "context": "", "origin": "planted"}]).write_parquet(
            tmp_path / "fn" / "functions" / "part-0.parquet")
        replay = tmp_path / "replay.jsonl"
        replay.write_text(json.dumps({"name": sha, "completion": "1) == 1\n"}) + "\n")
        assert cli.main(["testgen", "--functions", str(tmp_path / "fn"), "--out", out, "--backend",
                         "replay", "--replay-source", str(replay), "--n", "1", "--workers", "1"]) == 0
        (part,) = pathlib.Path(out, "work", "shard-all", "checks").glob("part-*.json")
        assert json.loads(part.read_text())[sha]["statuses"] == ["OK"]
    finally:
        shutil.rmtree(parent)
