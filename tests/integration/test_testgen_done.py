"""`multiplt testgen` on a finished shard (its `_DONE` written): the same rows again are done and
nothing is rewritten; other rows (another --functions, or the same file rewritten) are refused
with exit 2, as on an unfinished shard, and so are other settings. The case the DAG relies on:
two functions inputs whose default output folders collide (`corpus/a_b/functions` and
`corpus/a/b/functions` both become `testgen/corpus_a_b_functions`). Replay backend, functions
without asserts: no sandbox needed."""

from __future__ import annotations

import json
import pathlib
import shutil
import sys

import polars as pl

from multiplt import cli
from multiplt.testgen import inputs

REPO = pathlib.Path(__file__).resolve().parents[2]
if str(REPO / "dags") not in sys.path:
    sys.path.insert(0, str(REPO / "dags"))

from multiplt_pipelines import testgen as plans  # noqa: E402

FIXTURE = REPO / "tests" / "fixtures" / "testgen"
ROWS = {r["entrypoint"]: r for r in map(json.loads, (FIXTURE / "functions.jsonl").read_text().splitlines())}
SHARD = "shard-00000-of-00001"


def write_functions(folder: pathlib.Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pl.DataFrame([ROWS[n] for n in names]).write_parquet(folder / "part-00000.parquet")


def stamps(out: pathlib.Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in out.rglob("*")}


def plan(data: pathlib.Path, functions: str) -> dict:
    params = {**{k: v["default"] for k, v in plans.PARAMS.items()}, "functions": functions,
              "shards": 1, "backend": "replay", "replay_source": str(FIXTURE / "replay.jsonl"), "n": 2}
    [entry] = plans.testgen_plan(params, str(data))
    return entry


def test_a_finished_shard_compares_its_rows(tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    first, second = data / "corpus" / "a_b" / "functions", data / "corpus" / "a" / "b" / "functions"
    write_functions(first, "silent")  # no asserts: the shard finishes without the sandbox
    write_functions(second, "add")
    entry, colliding = plan(data, str(first)), plan(data, str(second))
    out = pathlib.Path(entry["generate"][entry["generate"].index("--out") + 1])
    assert out == data / "testgen" / "corpus_a_b_functions" and colliding["generate"] == [
        str(second) if a == str(first) else a for a in entry["generate"]]
    for stage in ("generate", "validate", "write"):
        assert cli.main(entry[stage]) == 0
    assert (out / "work" / SHARD / "_DONE").exists()
    capsys.readouterr()
    before = stamps(out)

    # the same input again: done, nothing written; its files are those input.json lists, so no
    # row is read
    with monkeypatch.context() as m:
        m.setattr(inputs, "read_functions", lambda uri: (_ for _ in ()).throw(AssertionError("read")))
        for stage in ("generate", "validate", "write"):
            assert cli.main(entry[stage]) == 0
            assert json.loads(capsys.readouterr().out)["skipped"] is True
    assert stamps(out) == before

    # the other input whose folder name collides: refused (exit 2), nothing written
    refused = (f"multiplt testgen: error: {out} holds a run of {SHARD} over other rows than {second} "
               "has now; use another --out\n")
    assert cli.main(colliding["generate"]) == 2
    assert capsys.readouterr().err == refused
    argv_all = [a for a in colliding["generate"] if a not in ("--stage", "generate")]
    assert cli.main(argv_all) == 2 and capsys.readouterr().err == refused
    assert stamps(out) == before

    # the same file rewritten with other rows: its listing differs, so the rows are read: refused
    saved = tmp_path / "saved.parquet"
    shutil.copy(first / "part-00000.parquet", saved)
    write_functions(first, "add")
    assert cli.main(entry["generate"]) == 2
    assert f"holds a run of {SHARD} over other rows than {first} has now" in capsys.readouterr().err
    # ... and rewritten with its rows again (a new file): the rows are the same, so it is done
    (first / "part-00000.parquet").unlink()
    shutil.copy(saved, first / "part-00000.parquet")
    assert cli.main(entry["generate"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped"] is True
    # only input.json was written anew (the new file's listing), so the next rerun reads no row
    now = stamps(out)
    assert {p for p in now if now[p] != before.get(p) and p.is_file()} == {out / "work" / SHARD / "input.json"}
    with monkeypatch.context() as m:
        m.setattr(inputs, "read_functions", lambda uri: (_ for _ in ()).throw(AssertionError("read")))
        assert cli.main(entry["generate"]) == 0
    capsys.readouterr()
    before = stamps(out)

    # one parquet file as the input (no listing to compare): its rows are compared
    other_file = tmp_path / "add.parquet"
    shutil.copy(second / "part-00000.parquet", other_file)
    for given, rc in ((first / "part-00000.parquet", 0), (other_file, 2)):
        argv = list(entry["generate"])
        argv[argv.index("--functions") + 1] = str(given)
        assert cli.main(argv) == rc, given
    assert f"over other rows than {other_file} has now" in capsys.readouterr().err
    assert stamps(out) == before

    # other settings are refused on a finished shard as before
    argv = list(entry["generate"])
    argv[argv.index("--n") + 1] = "3"
    assert cli.main(argv) == 2
    assert "records another run (n: 2 there, 3 now)" in capsys.readouterr().err
    assert stamps(out) == before
