"""`multiplt translate --stage all` executes the translations only after sampling them: once each
language's runtime is found, the executor's preflight runs (each language's known-good and
known-bad program, in the sandbox), so a sandbox that cannot start or a test library the
translated tests need (luaunit here) that is missing is refused before anything is sampled: one
error line naming it, exit 2, nothing written."""

import os
import shutil
import subprocess

import pytest

from multiplt.execution import preflight
from multiplt.execution.preflight import INSTALL_HINT
from multiplt.generation import driver
from tests.fixtures.translate import replay_translate as translate


def error_line(err: str) -> str:
    """The command's error: its one line, the last on stderr (log lines before it)."""
    assert err.count("error:") == 1
    return err.splitlines()[-1]


def test_a_sandbox_without_bwrap_is_refused_before_anything_is_sampled(inputs, tmp_path,
                                                                       monkeypatch, no_work,
                                                                       capsys):
    bin_dir = tmp_path / "bin"  # setpriv and prlimit, the sandbox's other tools, but no bwrap
    bin_dir.mkdir()
    for tool in ("setpriv", "prlimit"):
        if shutil.which(tool):
            os.symlink(shutil.which(tool), bin_dir / tool)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(preflight, "missing_binaries", lambda lang, unsafe=False: [])
    out = tmp_path / "out"
    assert translate(inputs, out, "rkt,lua") == 2
    line = error_line(capsys.readouterr().err)
    assert line.startswith("multiplt translate: error: no isolation available for untrusted "
                           "programs: bubblewrap (bwrap) is not installed (Debian package "
                           "bubblewrap)")
    assert line.endswith(f"(trusted code only); {INSTALL_HINT}")
    assert not out.exists() and no_work == []


def lua_with_luaunit() -> str | None:
    lua = shutil.which("lua5.4")
    if lua is None:
        return None
    found = subprocess.run([lua, "-e", "io.write(package.searchpath('luaunit', package.path) or '')"],
                           capture_output=True, text=True, timeout=30).stdout
    return lua if found else None


def test_a_missing_test_library_is_refused_before_anything_is_sampled(inputs, tmp_path,
                                                                      monkeypatch, no_work,
                                                                      capsys):
    """Lua is installed, luaunit is not where it looks (a lua5.4 first on the host's PATH that
    searches no library folder; without a sandbox the host's PATH is used)."""
    lua = lua_with_luaunit()
    if lua is None:
        pytest.skip("lua5.4 with luaunit is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "lua5.4").write_text(
        f"#!/bin/sh\nexec {lua} -e \"package.path='{tmp_path}/no-lib/?.lua'\" \"$@\"\n")
    (bin_dir / "lua5.4").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    out = tmp_path / "out"
    assert translate(inputs, out, "lua", "--unsafe-no-sandbox") == 2
    line = error_line(capsys.readouterr().err)
    assert line.startswith("multiplt translate: error: preflight for lua (lua) failed: its "
                           "known-good program ended Exception with exit code 1, expected OK. "
                           "The runtime or its test library (luaunit) is missing or misbehaves.")
    assert "module 'luaunit' not found" in line and line.endswith(f"; {INSTALL_HINT}")
    assert not out.exists() and no_work == []


def test_the_runtimes_and_test_libraries_that_work_pass(inputs, tmp_path, monkeypatch):
    """The check passes where everything is installed: sampling then runs (stopped there)."""
    if lua_with_luaunit() is None:
        pytest.skip("lua5.4 with luaunit is not installed")
    sampled = []

    def sample(*args, **kwargs):
        sampled.append("sampled")
        raise KeyboardInterrupt  # stop here: the run gets this far

    monkeypatch.setattr(driver, "generate", sample)
    assert translate(inputs, tmp_path / "out", "lua", "--unsafe-no-sandbox") == 130
    assert sampled == ["sampled"]
