"""Kill and rerun (issue 15, points 5 and 8): `multiplt translate` killed with SIGKILL while its
programs run keeps every finished sample and result; the rerun executes only what is missing and
gives exactly the rows of the fixture; a collection that lost its output redoes nothing but the
writing."""

import os
import signal
import subprocess
import sys
import time

import polars as pl
import pytest

from multiplt import cli, storage
from multiplt.translation import writer
from multiplt.translation.pipeline import completions_uri, work_uri
from tests.fixtures import translate as fx
from tests.unit.execution.helpers import installed

pytestmark = pytest.mark.slow
TRANSLATE = ["translate", "--lang", "rkt", "--backend", "replay", "--n", str(fx.N), "--timeout", str(fx.TIMEOUT),
             "--workers", "1"]


def results_files(folder):
    return sorted(u for u in storage.ls(folder) if u.endswith(".results.json.gz")) \
        if storage.exists(folder) else []


def test_killed_while_executing_then_rerun(tmp_path):
    if not installed("rkt"):
        pytest.skip("racket runtime not installed")
    inputs = fx.write(tmp_path / "in")
    out = str(tmp_path / "out")
    argv = TRANSLATE + ["--tests", inputs["tests"], "--replay-source", inputs["replay"], "--out", out]
    victim = subprocess.Popen([sys.executable, "-m", "multiplt", *argv], start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folder = completions_uri(out, "rkt", (0, 1))
    deadline = time.time() + 240
    try:  # one worker: the 15 s non-terminating program leaves time to kill between programs
        while not results_files(folder) and time.time() < deadline and victim.poll() is None:
            time.sleep(0.2)
        assert victim.poll() is None, "the run ended before it could be killed"
        assert results_files(folder), "no program finished in time"
    finally:
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
    assert not os.path.exists(os.path.join(out, "data"))
    before = {u: storage.read_json(u)["results"] for u in results_files(folder)}
    assert any(before.values())

    assert cli.main(argv) == 0
    df = pl.read_parquet(writer.data_uri(out, "racket", (0, 1)))
    assert {(r["entrypoint"], r["sample"]) for r in df.iter_rows(named=True)} == fx.kept("rkt")
    for uri, results in before.items():  # results of the killed run were kept, not run again
        after = storage.read_json(uri)["results"]
        assert after[:len(results)] == results
        assert len(after) == fx.N

    # the output is lost but the collected parts are not: the rerun only writes it again
    part = storage.join(work_uri(out, "rkt", (0, 1)), "collect", "part-00000.json.gz")
    part_mtime = os.stat(storage.local_path(part)).st_mtime_ns
    os.remove(storage.local_path(writer.data_uri(out, "racket", (0, 1))))
    assert cli.main(argv) == 0
    assert os.stat(storage.local_path(part)).st_mtime_ns == part_mtime
    again = pl.read_parquet(writer.data_uri(out, "racket", (0, 1)))
    assert again.equals(df)


def _lua_replay(tmp_path) -> tuple[str, list[str]]:
    """The output folder and the argv (less --n) of a Lua translate of the fixture by replay."""
    inputs = fx.write(tmp_path / "in")
    out = str(tmp_path / "out")
    return out, ["translate", "--lang", "lua", "--backend", "replay", "--timeout", str(fx.TIMEOUT),
                 "--workers", "2", "--tests", inputs["tests"], "--replay-source", inputs["replay"],
                 "--out", out]


def test_more_samples_later_gives_the_same_rows_as_all_at_once(tmp_path):
    """--n 3, then --n 7 into the same folder: the 4 new samples are generated, run and collected,
    and the dataset equals a run with --n 7 from the start (the fixture's exact rows)."""
    if not installed("lua"):
        pytest.skip("lua runtime not installed")
    out, argv = _lua_replay(tmp_path)
    assert cli.main(argv + ["--n", "3"]) == 0
    first = pl.read_parquet(writer.data_uri(out, "lua", (0, 1)))
    assert {(r["entrypoint"], r["sample"]) for r in first.iter_rows(named=True)} == {
        ("add_one", 0), ("count_vowels", 0), ("shout", 0)}
    assert cli.main(argv + ["--n", str(fx.N)]) == 0
    df = pl.read_parquet(writer.data_uri(out, "lua", (0, 1)))
    assert {(r["entrypoint"], r["sample"]) for r in df.iter_rows(named=True)} == fx.kept("lua")
    funnel = storage.read_json(storage.join(out, "funnel.json"))["lua"]
    assert funnel["translations_sampled"] == 3 * fx.N and funnel["after_rouge_l"] == 4


def test_a_collect_again_cut_before_its_data_file_collects_again(tmp_path, monkeypatch):
    """--n 3, then --n 7 cut after the shard's new config and funnel, before its data file: the
    rerun does not take the shard as written (its config says n 7, the data file was --n 3's):
    it writes the rows of --n 7."""
    if not installed("lua"):
        pytest.skip("lua runtime not installed")
    out, argv = _lua_replay(tmp_path)
    assert cli.main(argv + ["--n", "3"]) == 0
    data = writer.data_uri(out, "lua", (0, 1))
    real, cut = storage.write_parquet, []

    def write_parquet(uri, df, *args, **kwargs):
        if uri == data and not cut:
            cut.append(uri)
            raise KeyboardInterrupt  # Ctrl-C here
        return real(uri, df, *args, **kwargs)

    monkeypatch.setattr(storage, "write_parquet", write_parquet)
    assert cli.main(argv + ["--n", str(fx.N)]) != 0
    monkeypatch.undo()
    assert cut and storage.read_json(writer.config_uri(out, "lua", (0, 1)))["n"] == fx.N
    assert cli.main(argv + ["--n", str(fx.N)]) == 0
    df = pl.read_parquet(data)
    assert {(r["entrypoint"], r["sample"]) for r in df.iter_rows(named=True)} == fx.kept("lua")
    assert storage.read_json(storage.join(out, "funnel.json"))["lua"]["translations_sampled"] == 3 * fx.N
