"""Temp folders of a killed run (tempdirs.py): `multiplt execute` (multiplt-exec-*) and the corpus
build's type check (multiplt-pyright-*) killed with SIGKILL left them in TMPDIR, and nothing
removed them, so a long-lived worker's /tmp filled up. The next run now removes the ones whose
creator is gone, and never one of a live run (two executes run at once on one worker), nothing
reached through a symlink, nor a folder it cannot tell is owned."""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import socket
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from multiplt.corpus import typecheck
from multiplt.execution import tempdirs
from multiplt.execution.sandbox import Sandbox

CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
HOLD = ("import sys, time\nfrom multiplt.execution import tempdirs\n"
        "folder = tempdirs.Owned(sys.argv[1], sys.argv[2])\nprint(folder.path, flush=True)\n"
        "time.sleep(600)\n")


def _hold(prefix: str, parent) -> tuple[subprocess.Popen, str]:
    """Another process that made a folder and is still using it: (the process, the folder)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, prefix, str(parent)], cwd=CHECKOUT,
                            stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def _kill(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()
    proc.stdout.close()


@pytest.fixture
def parent():
    """A TMPDIR of the test's own that the sandbox user may enter (as root, TMPDIR must be)."""
    folder = tempfile.mkdtemp(prefix="multiplt-test-tempdirs-", dir="/tmp")
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_folder_left_by_a_killed_process_is_removed_and_a_live_ones_kept(parent, caplog):
    killed, stale = _hold("multiplt-exec-", parent)
    live, kept = _hold("multiplt-exec-", parent)
    try:
        _kill(killed)
        assert os.path.isfile(os.path.join(stale, tempdirs.OWNER_FILE))
        with caplog.at_level(logging.INFO, logger="multiplt.execution"):
            with tempdirs.Owned("multiplt-exec-", parent) as mine:
                assert sorted(os.listdir(parent)) == sorted(map(os.path.basename, [kept, mine]))
        assert "removed 1 temp folder(s) multiplt-exec-*" in caplog.text
        assert os.listdir(parent) == [os.path.basename(kept)]
        assert os.listdir(kept) == [tempdirs.OWNER_FILE]
    finally:
        _kill(live)


def test_only_owned_folders_of_this_user_are_swept_and_no_symlink_is_followed(parent):
    outside = tempfile.mkdtemp(prefix="multiplt-test-outside-")
    try:
        with open(os.path.join(outside, tempdirs.OWNER_FILE), "w") as f:
            f.write(f"{socket.gethostname()} 1\n")  # unlocked, looks owned, behind a symlink
        os.symlink(outside, os.path.join(parent, "multiplt-exec-link"))
        os.mkdir(os.path.join(parent, "multiplt-exec-unowned"))  # made before owners, or now
        killed, stale = _hold("multiplt-exec-", parent)
        _kill(killed)
        os.symlink(outside, os.path.join(stale, "escape"))  # removed as a link, not followed
        with open(os.path.join(parent, "multiplt-exec-file"), "w") as f:
            f.write("not a folder")
        assert tempdirs.sweep("multiplt-exec-", parent) == 1
        assert sorted(os.listdir(parent)) == ["multiplt-exec-file", "multiplt-exec-link",
                                              "multiplt-exec-unowned"]
        assert os.listdir(outside) == [tempdirs.OWNER_FILE]
        killed, stale = _hold("multiplt-exec-", parent)
        _kill(killed)
        with open(os.path.join(stale, tempdirs.OWNER_FILE), "w") as f:
            f.write("another-host 4242\n")  # a TMPDIR shared over NFS: flock holds per host
        assert tempdirs.sweep("multiplt-exec-", parent) == 0
        assert os.path.isdir(stale)
        shutil.rmtree(stale)
        if os.geteuid() == 0:  # another user's stale folder is left alone
            killed, stale = _hold("multiplt-exec-", parent)
            _kill(killed)
            os.chown(stale, 12345, 12345)
            assert tempdirs.sweep("multiplt-exec-", parent) == 0
            assert os.path.isdir(stale)
    finally:
        shutil.rmtree(outside)


def test_an_unowned_folder_unchanged_for_a_week_is_removed_as_an_older_versions(parent):
    """Folders made before folders had an owner were never swept: one whose files have not
    changed for LEGACY_AGE_S goes; one with a file written lately, or made just now, stays."""
    old = time.time() - tempdirs.LEGACY_AGE_S - 3600

    def unowned(name: str, recent_file: bool = False) -> str:
        folder = os.path.join(parent, name)
        os.makedirs(os.path.join(folder, "lib"))
        with open(os.path.join(folder, "init"), "w") as f:
            f.write("x")
        for path in (os.path.join(folder, "lib"), os.path.join(folder, "init"), folder):
            os.utime(path, (old, old))
        if recent_file:
            os.utime(os.path.join(folder, "init"))
        return folder

    legacy = unowned("multiplt-exec-legacy")
    busy = unowned("multiplt-exec-busy", recent_file=True)
    os.mkdir(os.path.join(parent, "multiplt-exec-new"))
    assert tempdirs.sweep("multiplt-exec-", parent) == 1
    assert not os.path.exists(legacy)
    assert sorted(os.listdir(parent)) == ["multiplt-exec-busy", "multiplt-exec-new"]
    assert sorted(os.listdir(busy)) == ["init", "lib"]


def _write_sleeper(folder) -> None:
    """One Python problem whose completion sleeps (the run is live while it runs)."""
    with gzip.open(os.path.join(folder, "P.json.gz"), "wt") as f:
        json.dump({"name": "P", "language": "py", "prompt": "", "tests": "",
                   "completions": ["import time\ntime.sleep(60)\n"]}, f)


def _folders(parent, prefix: str) -> list[str]:
    return sorted(n for n in os.listdir(parent) if n.startswith(prefix))


def test_a_killed_executes_folder_goes_with_the_next_batch_and_a_live_ones_stays(
        parent, tmp_path, monkeypatch):
    """Two runs on one worker: the sweep of the second keeps the folder of the first while it
    runs, and removes it once the first was killed with SIGKILL."""
    run = tmp_path / "run"
    run.mkdir()
    _write_sleeper(run)
    first = subprocess.Popen([sys.executable, "-m", "multiplt", "execute", "--in", str(run),
                              "--workers", "1", "--timeout", "120"], cwd=CHECKOUT,
                             env={**os.environ, "TMPDIR": parent}, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not _folders(parent, "multiplt-exec-") and time.monotonic() < deadline:
            time.sleep(0.1)
        (theirs,) = _folders(parent, "multiplt-exec-")
        owner, deadline = os.path.join(parent, theirs, tempdirs.OWNER_FILE), time.monotonic() + 10
        while not os.path.exists(owner) and time.monotonic() < deadline:
            time.sleep(0.1)
        monkeypatch.setattr(tempfile, "tempdir", parent)
        with Sandbox() as sandbox:
            sandbox.check()  # the second run, while the first runs
            assert first.poll() is None
            ours = os.path.basename(sandbox._tmp_root)
            assert _folders(parent, "multiplt-exec-") == sorted([theirs, ours])
        first.send_signal(signal.SIGKILL)
        first.wait()
        assert _folders(parent, "multiplt-exec-") == [theirs]  # left behind by the killed run
        with Sandbox() as sandbox:
            sandbox.check()
            assert _folders(parent, "multiplt-exec-") == [os.path.basename(sandbox._tmp_root)]
        assert os.listdir(parent) == []
    finally:
        first.kill()
        first.wait()


def test_the_type_checks_folders_are_swept_too(parent, monkeypatch):
    killed, stale = _hold("multiplt-pyright-", parent)
    _kill(killed)
    monkeypatch.setattr(tempfile, "tempdir", parent)
    rows = [{"id": "a", "sha1": "0" * 40, "context": "", "content": "x = 1\n"}]
    # a stand-in for Pyright that reports no error
    assert typecheck.check_batch(rows, 30, [sys.executable, "-c", "print('{}')"]) == {}
    assert os.listdir(parent) == []
