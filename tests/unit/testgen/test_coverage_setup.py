"""`multiplt testgen` with coverage.py installed under /tmp (a checkout cloned there): the sandbox
hides the host's /tmp from the runner, so the stages that validate refuse it before any row is
read or sampled (exit 2, nothing written); the generate stage does not need it; without a sandbox
(--unsafe-no-sandbox) the runner sees the host's /tmp and measures coverage with that install."""

import json
import os
import pathlib
import shutil
import tempfile

import coverage
import polars as pl
import pytest

from multiplt import cli
from multiplt.generation import driver
from multiplt.testgen import inputs

FIXTURE = pathlib.Path(__file__).parents[2] / "fixtures" / "testgen"
ROWS = [json.loads(line) for line in (FIXTURE / "functions.jsonl").read_text().splitlines()]
ADD = next(r for r in ROWS if r["entrypoint"] == "add")


def functions(tmp_path, rows) -> str:
    (tmp_path / "fn" / "functions").mkdir(parents=True)
    pl.DataFrame(rows).write_parquet(tmp_path / "fn" / "functions" / "part-0.parquet")
    return str(tmp_path / "fn")


def run_testgen(fn, out, *extra):
    return cli.main(["testgen", "--functions", fn, "--out", str(out), "--backend", "replay",
                     "--replay-source", str(FIXTURE / "replay.jsonl"), "--n", "2", *extra])


def test_coverage_under_tmp_is_refused_before_any_row_is_read_or_sampled(tmp_path, monkeypatch,
                                                                          capsys):
    monkeypatch.setattr(coverage, "__file__", "/tmp/clone/.venv/lib/python3.11/site-packages/"
                        "coverage/__init__.py")
    work = []

    def read(uri):
        work.append(f"read {uri}")
        raise AssertionError(f"{uri} was read")

    def sample(*args, **kwargs):
        work.append("sampled")
        raise AssertionError("the backend was called")

    monkeypatch.setattr(inputs, "read_functions", read)
    monkeypatch.setattr(driver, "generate", sample)
    fn = functions(tmp_path, ROWS)
    for stage in ("all", "validate"):
        out = tmp_path / f"out-{stage}"
        assert run_testgen(fn, out, "--stage", stage) == 2, stage
        err = capsys.readouterr().err
        assert ("coverage.py is installed under /tmp (/tmp/clone/.venv/lib/python3.11/site-packages), "
                "which the sandbox's own /tmp hides") in err, stage
        assert err.count("error:") == 1 and not out.exists(), stage
    assert work == []


def test_the_generate_stage_does_not_need_coverage(tmp_path, monkeypatch):
    """The GPU stage validates nothing: it runs wherever coverage.py is (or is not)."""
    monkeypatch.setattr(coverage, "__file__", "/tmp/clone/.venv/lib/python3.11/site-packages/"
                        "coverage/__init__.py")
    out = tmp_path / "out"
    assert run_testgen(functions(tmp_path, ROWS), out, "--stage", "generate") == 0
    assert (out / "work" / "shard-all" / "completions").is_dir()


@pytest.fixture
def coverage_under_tmp(monkeypatch):
    """A real copy of the installed coverage package in a folder under /tmp, as the one
    coverage.py of this process."""
    site = tempfile.mkdtemp(prefix="multiplt-test-site-", dir="/tmp")
    try:
        installed = os.path.dirname(os.path.realpath(coverage.__file__))
        shutil.copytree(installed, os.path.join(site, "coverage"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        monkeypatch.setattr(coverage, "__file__", os.path.join(site, "coverage", "__init__.py"))
        yield site
    finally:
        shutil.rmtree(site, ignore_errors=True)


def test_without_a_sandbox_coverage_under_tmp_is_used(tmp_path, coverage_under_tmp, capsys):
    fn = functions(tmp_path, [ADD])
    out = tmp_path / "out"
    assert run_testgen(fn, out) == 2  # the sandbox would hide it: refused
    assert "coverage.py is installed under /tmp" in capsys.readouterr().err and not out.exists()
    assert run_testgen(fn, out, "--unsafe-no-sandbox") == 0
    kept = pl.read_parquet(out / "tests" / "shard-all.parquet").to_dicts()
    assert [(r["entrypoint"], r["tests"], r["coverage"]) for r in kept] == [
        ("add", ["assert add(1, 2) == 3"], 100)]
    checks = [json.loads(p.read_text()) for p in (out / "work" / "shard-all" / "checks").glob("*.json")]
    assert [c[ADD["sha1"]]["coverage"]["statements"] for c in checks] == [[1, 3]]
