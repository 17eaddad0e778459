"""MULTIPLT_CPUS (the local stage runtime sets it from a task's `cpus`) caps execute's default
worker count; a value that is no positive integer is one clear error before anything runs."""

import concurrent.futures
import gzip
import json

import pytest

from multiplt import cli
from multiplt.errors import MultipltError
from multiplt.execution import executor


@pytest.fixture
def eight_cores(monkeypatch):
    monkeypatch.setattr(executor.os, "sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.delenv("MULTIPLT_CPUS", raising=False)


@pytest.mark.parametrize("value,workers", [(None, 8), ("", 8), ("2", 2), (" 3 ", 3), ("8", 8), ("64", 8)])
def test_the_budget_caps_the_default(eight_cores, monkeypatch, value, workers):
    if value is not None:
        monkeypatch.setenv("MULTIPLT_CPUS", value)
    assert executor.default_workers() == workers


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_a_bad_budget_is_one_error(eight_cores, monkeypatch, value):
    monkeypatch.setenv("MULTIPLT_CPUS", value)
    with pytest.raises(MultipltError) as caught:
        executor.default_workers()
    assert str(caught.value) == f"MULTIPLT_CPUS must be a positive integer (the CPUs to use), got {value!r}"


def problem(folder, name):
    doc = {"name": name, "language": "lua", "prompt": "", "tests": "", "completions": ["print(1)"]}
    with gzip.open(folder / f"{name}.json.gz", "wt") as f:
        json.dump(doc, f)


def test_execute_runs_that_many_workers(tmp_path, eight_cores, monkeypatch):
    pools = []
    real = concurrent.futures.ThreadPoolExecutor

    def pool(*args, **kwargs):
        if kwargs.get("thread_name_prefix") == "multiplt-exec":  # execute's workers
            pools.append(args[0] if args else kwargs["max_workers"])
        return real(*args, **kwargs)

    monkeypatch.setattr(executor.concurrent.futures, "ThreadPoolExecutor", pool)
    monkeypatch.setenv("MULTIPLT_CPUS", "1")
    problem(tmp_path, "A")
    executor.execute(str(tmp_path))
    assert pools == [1] and (tmp_path / "A.results.json.gz").exists()


def test_the_cli_says_it_in_one_line_and_runs_nothing(tmp_path, eight_cores, monkeypatch, capsys):
    monkeypatch.setenv("MULTIPLT_CPUS", "lots")
    problem(tmp_path, "A")
    assert cli.main(["execute", "--in", str(tmp_path)]) == 2
    assert capsys.readouterr().err == ("multiplt execute: error: MULTIPLT_CPUS must be a positive integer "
                                       "(the CPUs to use), got 'lots'\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A.json.gz"]
