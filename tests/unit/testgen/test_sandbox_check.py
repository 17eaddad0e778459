"""`multiplt testgen` runs the asserts in the sandbox only after the LLM sampled every function's
tests: the stages that validate prove the sandbox works first (the executor's preflight, with
python3), so a sandbox that cannot start (here: no bwrap on PATH) is refused before the model is
loaded or anything sampled or written (`all`: once the rows are read, their own errors first;
`validate`: before it reads anything): one error line naming what is missing and where it comes
from, exit 2. With --unsafe-no-sandbox there is no such check."""

import json
import os
import pathlib
import shutil

import polars as pl
import pytest

from multiplt import cli
from multiplt.errors import MultipltError
from multiplt.execution.preflight import INSTALL_HINT
from multiplt.generation import driver
from multiplt.testgen import inputs

FIXTURE = pathlib.Path(__file__).parents[2] / "fixtures" / "testgen"
ROWS = [json.loads(line) for line in (FIXTURE / "functions.jsonl").read_text().splitlines()]


def run_testgen(fn, out, *extra):
    return cli.main(["testgen", "--functions", fn, "--out", str(out), "--backend", "replay",
                     "--replay-source", str(FIXTURE / "replay.jsonl"), "--n", "2", *extra])


@pytest.fixture
def functions(tmp_path):
    (tmp_path / "fn" / "functions").mkdir(parents=True)
    pl.DataFrame(ROWS).write_parquet(tmp_path / "fn" / "functions" / "part-0.parquet")
    return str(tmp_path / "fn")


@pytest.fixture
def path_without_bwrap(tmp_path, monkeypatch):
    """A PATH that holds setpriv and prlimit (the sandbox's other tools) but no bwrap."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("setpriv", "prlimit"):
        found = shutil.which(tool)
        if found:
            os.symlink(found, bin_dir / tool)
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


@pytest.fixture
def work(monkeypatch):
    """What was done: rows read, samples drawn (the sampler stops the run with an error)."""
    done = []
    read = inputs.read_functions

    def read_functions(uri):
        done.append("read")
        return read(uri)

    def sample(*args, **kwargs):
        done.append("sampled")
        raise MultipltError("stopped after sampling")

    monkeypatch.setattr(inputs, "read_functions", read_functions)
    monkeypatch.setattr(driver, "generate", sample)
    return done


def test_a_sandbox_without_bwrap_is_refused_before_anything_is_sampled(
        functions, tmp_path, path_without_bwrap, work, capsys):
    for stage in ("validate", "all"):
        out = tmp_path / f"out-{stage}"
        assert run_testgen(functions, out, "--stage", stage) == 2, stage
        err = capsys.readouterr().err
        line = err.splitlines()[-1]  # the error, on one line of its own (log lines before it)
        assert line.startswith("multiplt testgen: error: no isolation available for untrusted "
                               "programs: bubblewrap (bwrap) is not installed (Debian package "
                               "bubblewrap)"), stage
        assert line.endswith("--unsafe-no-sandbox to run them without isolation (trusted code "
                             f"only); {INSTALL_HINT}"), stage
        assert err.count("error:") == 1 and not out.exists(), stage
    assert work == ["read"]  # by `all` only


def test_bad_rows_are_reported_before_the_sandbox(tmp_path, path_without_bwrap, work, capsys):
    (tmp_path / "bad" / "functions").mkdir(parents=True)
    pl.DataFrame([{**row, "content": "45"} for row in ROWS]).write_parquet(
        tmp_path / "bad" / "functions" / "part-0.parquet")
    out = tmp_path / "out"
    assert run_testgen(str(tmp_path / "bad"), out) == 2
    err = capsys.readouterr().err
    assert "rows are malformed" in err and "bwrap" not in err and err.count("\n") == 1
    assert not out.exists() and work == ["read"]


def test_without_a_sandbox_nothing_is_checked(functions, tmp_path, path_without_bwrap, work,
                                              capsys):
    out = tmp_path / "out"
    assert run_testgen(functions, out, "--unsafe-no-sandbox") == 2
    assert "stopped after sampling" in capsys.readouterr().err
    assert work == ["read", "sampled"]


def test_the_generate_stage_does_not_need_the_sandbox(functions, tmp_path, path_without_bwrap):
    out = tmp_path / "out"
    assert run_testgen(functions, out, "--stage", "generate") == 0
    assert (out / "work" / "shard-all" / "completions").is_dir()
