"""Kill `multiplt execute` mid-run and rerun it (issue 4, point 5).

A problem's results are written once it is complete and, while it runs, every SAVE_EVERY_S: the
kill loses the programs in flight (at most one per worker) and the results that finished since
the last write, and the rerun does exactly the missing ones. Run with SAVE_EVERY_S 0 (every batch
written at once) the kill loses only the programs in flight; with SAVE_EVERY_S far off, it loses
every result of the problems not complete yet, and the rerun runs those. A second test kills a
sandboxed run and checks that its programs die with it (bubblewrap's --die-with-parent).
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from multiplt.execution import files
from tests.unit.execution.helpers import installed

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not installed("lua"), reason="lua5.4 not installed")]

WORKERS = 2
PROBLEMS, PER_PROBLEM = 3, 12


#: `multiplt execute ARGS...` with executor.SAVE_EVERY_S set to argv[1]
WITH_SAVE_EVERY = ("import sys\n"
                   "from multiplt import cli\n"
                   "from multiplt.execution import executor\n"
                   "executor.SAVE_EVERY_S = float(sys.argv[1])\n"
                   "sys.exit(cli.main(sys.argv[2:]))\n")


def _execute(folder, *extra, save_every: float | None = None):
    command = [sys.executable, "-m", "multiplt"] if save_every is None else \
        [sys.executable, "-c", WITH_SAVE_EVERY, str(save_every)]
    return subprocess.Popen([*command, "execute", "--in", str(folder),
                             "--workers", str(WORKERS), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _write(folder, name, completions):
    doc = {"name": name, "language": "lua", "prompt": "", "tests": "", "completions": completions,
           "stop_tokens": [], "temperature": 0.2, "top_p": 0.95, "max_tokens": 512}
    with gzip.open(folder / f"{name}.json.gz", "wt") as f:
        json.dump(doc, f)


def _persisted(folder) -> dict[tuple[str, int], dict]:
    done = {}
    for path in folder.glob("*.results.json.gz"):
        try:
            with gzip.open(path, "rt") as f:
                doc = json.load(f)
        except (OSError, EOFError, ValueError):
            continue
        for i, r in enumerate(doc["results"]):
            done[(doc["name"], i)] = r
        for i, r in doc.get(files.PENDING_KEY, {}).items():
            done[(doc["name"], int(i))] = r
    return done


@pytest.mark.parametrize("save_every", [0, 3600])
def test_kill_loses_only_what_was_not_written(tmp_path, save_every):
    # Unsandboxed (our own trusted programs), so that each program can leave a marker on the
    # host when it has finished: the markers tell exactly which programs had ended at the kill.
    folder, marks = tmp_path / "run", tmp_path / "marks"
    folder.mkdir()
    marks.mkdir()
    for p in range(PROBLEMS):
        _write(folder, f"P{p}", [
            f'os.execute("sleep 0.15")\nlocal f = io.open("{marks}/P{p}-{i}", "w")\n'
            'if f then f:close() end\n'
            for i in range(PER_PROBLEM)])
    proc = _execute(folder, "--unsafe-no-sandbox", save_every=save_every)
    deadline = time.monotonic() + 60
    while len(_persisted(folder)) < 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)  # the programs in flight finish on their own (no sandbox to kill them)
    finished = {tuple(m.name.rsplit("-", 1)) for m in marks.iterdir()}
    finished = {(name, int(i)) for name, i in finished}
    persisted = _persisted(folder)
    total = PROBLEMS * PER_PROBLEM
    assert 8 <= len(persisted) < total, "the kill came too late to test anything"
    assert set(persisted) <= finished
    if save_every == 0:
        assert len(finished - set(persisted)) <= WORKERS, "lost more than the programs in flight"
    else:  # nothing written before a problem was complete: whole problems, or nothing of one
        whole = {name for name, _ in persisted}
        assert set(persisted) == {(name, i) for name in whole for i in range(PER_PROBLEM)}

    rerun = _execute(folder)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    summary = json.loads(out)
    assert summary["programs"]["dropped"]["done in an earlier run"] == len(persisted)
    assert summary["programs"]["kept"] == total - len(persisted)
    final = _persisted(folder)
    assert len(final) == total
    for (name, i), result in persisted.items():
        assert final[(name, i)] == result  # kept as they were, not rerun
    for p in range(PROBLEMS):
        with gzip.open(folder / f"P{p}.results.json.gz", "rt") as f:
            doc = json.load(f)
        assert files.PENDING_KEY not in doc and len(doc["results"]) == PER_PROBLEM
        assert [r["status"] for r in doc["results"]] == ["OK"] * PER_PROBLEM


def processes_with(marker: str) -> list[str]:
    """The pids whose command line holds `marker` (a zombie's is empty: it counts as gone)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(pid)
        except OSError:
            pass
    return found


def test_killing_the_executor_kills_its_sandboxes(tmp_path):
    marker = f"multiplt-marker-{uuid.uuid4().hex[:8]}"
    _write(tmp_path, "P", [f"os.execute(\"bash -c 'exec -a {marker}-{i} sleep 60'\")\n"
                           for i in range(4)])
    proc = _execute(tmp_path, "--timeout", "100")
    deadline = time.monotonic() + 60
    while not processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert processes_with(marker)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 5
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(marker) == []
