"""An interrupted validation (Ctrl-C, SIGTERM) ends at once: the batch running then is killed
with its sandbox rather than waited for, every batch that had finished is saved, and a rerun
reuses those."""

from __future__ import annotations

import threading
import uuid

import pytest

from multiplt.testgen import execute
from multiplt.testgen.validate import Check
from tests.support.threads import python_sigint
from tests.unit.execution.test_close_stops import interrupt_when, processes_with


def fast(key: str) -> Check:
    return Check(key=key, prefix=f"def {key}(x):\n    return x\n", entrypoint=key,
                 asserts=[f"assert {key}(1) == 1"])


def slow(key: str, marker: str) -> Check:
    """A function whose assert never ends on its own: it waits for `sleep` named `marker`."""
    prefix = (f"def {key}(x):\n    import subprocess\n"
              f"    subprocess.run(['bash', '-c', 'exec -a {marker} sleep 3600'])\n    return x\n")
    return Check(key=key, prefix=prefix, entrypoint=key, asserts=[f"assert {key}(1) == 1"])


# without the fix the run waits for the batch that never ends: a hang; the
# thread method ends even a main thread stuck in a wait
@pytest.mark.timeout(180, method="thread")
def test_interrupt_kills_the_running_batch_and_saves_the_finished_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(execute, "BATCH_ASSERTS", 1)  # one function per batch
    monkeypatch.setattr(execute, "SAVE_EVERY_S", 1e9)  # nothing saved before the run ends
    folder = str(tmp_path / "checks")
    marker = f"multiplt-testgen-{uuid.uuid4().hex[:8]}"
    done, hanging = fast("done"), slow("hanging", marker)
    finished = threading.Event()
    with python_sigint():
        interrupt_when(lambda: done.done and processes_with(marker), finished)
        try:
            with pytest.raises(KeyboardInterrupt):
                execute.run_all([done, hanging], folder, workers=2, timeout=3600)
        finally:
            finished.set()
    assert processes_with(marker) == [], "the running batch was left running"
    saved = execute.load_saved(folder)
    assert sorted(saved) == ["done"] and saved["done"]["statuses"] == ["OK"]

    # the rerun validates only what was not saved (the hanging function, its asserts now mended)
    summary = execute.run_all([fast("done"), fast("hanging")], folder, workers=2, timeout=30)
    assert (summary["functions_reused"], summary["functions_run"]) == (1, 1)
    assert sorted(execute.load_saved(folder)) == ["done", "hanging"]
