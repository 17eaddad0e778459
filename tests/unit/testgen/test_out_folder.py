"""`multiplt testgen --out`: a folder holding files testgen did not write (a parquet file in tests/
would reach translate) is refused before any row is read; an empty folder, and the shards of one
run writing into one folder, are accepted. Replay backend, generate stage: no sandbox needed."""

import json
import pathlib

import polars as pl

from multiplt import cli
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


def test_an_empty_folder_and_the_shards_of_one_run_are_accepted(tmp_path):
    fn = functions(tmp_path)
    out = tmp_path / "tg"
    (out / "made-by-the-runtime").mkdir(parents=True)
    assert run_testgen(fn, out, "--shard", "0/2") == 0
    assert run_testgen(fn, out, "--shard", "1/2") == 0  # shard 0 wrote into work/ (it may still run)
    assert run_testgen(fn, out, "--shard", "0/2") == 0  # resumed
    assert sorted(p.name for p in (out / "work").iterdir()) == ["shard-00000-of-00002", "shard-00001-of-00002"]
