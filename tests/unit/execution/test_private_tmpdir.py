"""Issue 12, point 6: `multiplt execute` run as root with TMPDIR set to a folder the sandbox user
cannot enter (mode 700) used to die with a PermissionError traceback from the warm sandbox's
thread; it runs, in every mode, and the Lua library cache still reaches the sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import pytest

from multiplt import languages
from multiplt.execution.sandbox import Sandbox
from tests.unit.execution.helpers import installed
from tests.unit.execution.test_executor import BAD, GOOD, PROMPT, TESTS, read_results, write_problem

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the bug needs root (the sandbox drops to 65534)"),
    pytest.mark.skipif(not installed("lua"), reason="lua5.4 not installed"),
]


@pytest.fixture
def private_tmp(tmp_path):
    os.chmod(tmp_path, 0o700)  # nothing below tmp_path is reachable by uid 65534
    private = tmp_path / "private-tmp"
    private.mkdir(mode=0o700)
    return private


def test_execute_as_root_with_a_private_tmpdir(tmp_path, private_tmp):
    folder = tmp_path / "run"
    folder.mkdir()
    write_problem(folder, "P", [GOOD, BAD])
    ran = subprocess.run([sys.executable, "-m", "multiplt", "execute", "--in", str(folder),
                          "--workers", "2"], env={**os.environ, "TMPDIR": str(private_tmp)},
                         capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "Traceback" not in ran.stderr
    assert json.loads(ran.stdout)["sandbox"] == "warm"
    assert [r["status"] for r in read_results(folder, "P")["results"]] == ["OK", "AssertionError"]


@pytest.mark.parametrize("warm", [True, False], ids=["warm", "per-program"])
def test_every_runner_works_with_a_private_tmpdir(private_tmp, monkeypatch, warm):
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    lua = languages.get("lua")
    with Sandbox(warm=warm) as sandbox:
        sandbox.prepare(lua)
        assert sandbox._library(lua)  # the precompiled luaunit, mounted for the sandbox user
        for body, status in ((GOOD, "OK"), (BAD, "AssertionError")):
            finished = sandbox.run(lua, PROMPT + body + "\n" + TESTS, 20)
            assert lua.classify(finished.exit_code, finished.stdout, finished.stderr) == status
