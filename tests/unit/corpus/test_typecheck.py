"""The Pyright filter (basedpyright, standard mode): errors drop, warnings do not, the context's
imports are present, errors inside the context are not the function's, batches agree."""

import pytest

from multiplt.corpus.typecheck import TypeCheckFilter
from tests.unit.corpus.helpers import rows_of

pytestmark = pytest.mark.slow

MODULE = '''
import re
from typing import Optional

SPACES = re.compile(r"\\s+")
BROKEN: int = "not an int"


def squash(text: str) -> str:
    """Uses the module-level pattern: fine with its context."""
    parts = SPACES.split(text)
    return " ".join(parts)


def first_digit(text: str) -> int:
    """re.search may return None: `.group` on it is an error in standard mode."""
    match = re.search(r"\\d", text)
    return int(match.group(0))


def unknown(x):
    """Calls a name defined nowhere."""
    return undefined_helper(x) + 1


def uses_broken(x: int) -> int:
    """Its context (BROKEN's annotation) has an error; the function has none."""
    return x + BROKEN


def unused_import_is_fine(x: Optional[int]) -> int:
    """Optional is fine; a self-assignment is only a warning at most."""
    x = x
    return 0 if x is None else x
'''


def run(rows, **kwargs):
    block = TypeCheckFilter(**kwargs)
    excluded = []
    kept = block.run(rows, excluded)
    return [r["entrypoint"] for r in kept], {r["entrypoint"]: r["detail"] for r in excluded}


def test_errors_drop_and_context_imports_are_present():
    kept, dropped = run(rows_of(MODULE))
    assert kept == ["squash", "uses_broken", "unused_import_is_fine"]
    assert sorted(dropped) == ["first_digit", "unknown"]
    assert dropped["first_digit"].startswith("reportOptionalMemberAccess")
    assert dropped["unknown"].startswith("reportUndefinedVariable")


def test_without_its_context_a_function_using_module_names_is_dropped():
    rows = rows_of(MODULE)
    for row in rows:
        row["context"] = ""
    kept, dropped = run(rows)
    assert "squash" in dropped and "reportUndefinedVariable" in dropped["squash"]


def test_parallel_small_batches_agree_with_one_batch():
    assert run(rows_of(MODULE), batch=2, workers=2) == run(rows_of(MODULE))


def test_a_batch_past_its_timeout_is_halved_and_retried(monkeypatch):
    """A timeout drops nothing by itself: the batch is split until each part finishes, and only
    a single file that still times out is dropped for it."""
    import os

    from multiplt.corpus import typecheck

    real_run = typecheck.Processes.run
    sizes = []

    def slow_for_big_batches(self, argv, folder, timeout):
        files = [f for f in os.listdir(folder) if f.endswith(".py")]
        sizes.append(len(files))
        if len(files) > 2 or any("first_digit" in open(os.path.join(folder, f)).read()
                                 for f in files):
            return None  # what a run past its timeout gives
        return real_run(self, argv, folder, timeout)

    monkeypatch.setattr(typecheck.Processes, "run", slow_for_big_batches)
    kept, dropped = run(rows_of(MODULE))
    assert sizes[0] == 5 and max(sizes[1:]) <= 3
    assert kept == ["squash", "uses_broken", "unused_import_is_fine"]
    assert dropped["first_digit"] == "pyright timed out after 300 s on this file alone"
    assert dropped["unknown"].startswith("reportUndefinedVariable")


IMPORTS_POLARS = '''
def frame_of(values: list[int]):
    """A polars frame: polars is installed for the interpreter running the check."""
    import polars

    return polars.DataFrame({"v": values})
'''


def test_imports_resolve_against_the_running_interpreter_whatever_is_on_path(tmp_path, monkeypatch):
    """With no Python on PATH at all, a package installed for this interpreter still resolves:
    Pyright is given sys.executable (its config has no such setting)."""
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no python, no basedpyright
    kept, dropped = run(rows_of(IMPORTS_POLARS))
    assert dropped == {} and kept == ["frame_of"]


def _is_gone(pid: int) -> bool:
    """Dead: no such process, or a zombie waiting for its parent."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _dies(pid: int) -> bool:
    """Whether `pid` is dead within 30 s (a kill is sent at once; its delivery is the
    kernel's); the child of the stand-in below would sleep on for 90 s unkilled."""
    import time

    for _ in range(300):
        if _is_gone(pid):
            return True
        time.sleep(0.1)
    return _is_gone(pid)


# A stand-in for Pyright that, like basedpyright's script, leaves the work to a child process
# sharing its output: for a batch holding `slow` the child writes its pid to $FAKE_PID_FILE and
# sleeps; otherwise it reports no error.
FAKE_PYRIGHT = r'''
import os, subprocess, sys
folder = sys.argv[sys.argv.index("-p") + 1]
texts = [open(os.path.join(folder, f)).read() for f in os.listdir(folder) if f.endswith(".py")]
if any("slow" in t for t in texts):
    child = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(90)"
    sys.exit(subprocess.run([sys.executable, "-c", child, os.environ["FAKE_PID_FILE"]]).returncode)
print("{}")
'''

SLOW_AND_FAST = '''
def fast_one(x):
    """Fine."""
    return x


def slow_two(x):
    """Makes the stand-in sleep."""
    return x


def fast_three(x):
    """Fine."""
    return x


def fast_four(x):
    """Fine."""
    return x


def fast_five(x):
    """Fine."""
    return x
'''


def _fake_pyright(tmp_path, monkeypatch):
    import sys

    from multiplt.corpus import typecheck

    script = tmp_path / "fake_pyright.py"
    script.write_text(FAKE_PYRIGHT)
    pid_file = tmp_path / "child.pid"
    monkeypatch.setenv("FAKE_PID_FILE", str(pid_file))
    monkeypatch.setattr(typecheck, "pyright_command", lambda: [sys.executable, str(script)])
    return pid_file


def test_a_timed_out_batch_is_killed_with_its_child(tmp_path, monkeypatch):
    """basedpyright is a script whose child (node) does the work: a timeout kills both, not
    the script alone (which would leave the child checking on)."""
    from multiplt.corpus import typecheck

    pid_file = _fake_pyright(tmp_path, monkeypatch)
    (row,) = [r for r in rows_of(SLOW_AND_FAST) if r["entrypoint"] == "slow_two"]
    verdicts = typecheck.check_batch([row], 10, typecheck.pyright_command())
    assert verdicts == {row["id"]: "pyright timed out after 10 s on this file alone"}
    assert _dies(int(pid_file.read_text()))


def test_an_interrupt_starts_no_queued_batch_and_keeps_the_finished_ones(tmp_path, monkeypatch):
    """Ctrl-C while batch 2 runs (batch 1 done, 3-5 queued): the running batch is killed, the
    queued ones never start, batch 1's verdicts are saved and a rerun checks only the rest."""
    import time

    from multiplt.corpus import typecheck

    pid_file = _fake_pyright(tmp_path, monkeypatch)
    started = []
    real_check = typecheck.check_batch

    def counting(rows, *args):
        started.append(rows[0]["entrypoint"])
        return real_check(rows, *args)

    monkeypatch.setattr(typecheck, "check_batch", counting)

    def ctrl_c_once_batch_2_runs(n, total):
        for _ in range(600):  # batch 2's child is up (its pid written) within a minute
            if pid_file.exists() and pid_file.read_text():
                break
            time.sleep(0.1)
        raise KeyboardInterrupt

    saved = tmp_path / "saved"
    block = TypeCheckFilter(batch=1, workers=1, progress=ctrl_c_once_batch_2_runs, saved=str(saved))
    with pytest.raises(KeyboardInterrupt):
        block.run(rows_of(SLOW_AND_FAST), [])
    assert started == ["fast_one", "slow_two"]
    assert len(list(saved.iterdir())) == 1  # batch 1's verdicts
    assert _dies(int(pid_file.read_text()))

    started.clear()
    pid_file.unlink()
    monkeypatch.setenv("FAKE_PID_FILE", str(tmp_path / "unused.pid"))
    rows = [r for r in rows_of(SLOW_AND_FAST) if r["entrypoint"] != "slow_two"]
    kept, dropped = run(rows, batch=1, saved=str(saved))
    assert kept == ["fast_one", "fast_three", "fast_four", "fast_five"] and dropped == {}
    assert started == ["fast_three", "fast_four", "fast_five"]  # batch 1 came from saved/


def test_pyright_stays_in_the_commands_process_group(tmp_path, monkeypatch):
    """Airflow ends a task by signalling its process group: the Pyright processes (and node
    below them) must be in it, not in a session of their own, or they outlive the task."""
    import os
    import threading
    import time

    from multiplt.corpus import typecheck

    pid_file = _fake_pyright(tmp_path, monkeypatch)
    (row,) = [r for r in rows_of(SLOW_AND_FAST) if r["entrypoint"] == "slow_two"]
    processes = typecheck.Processes()
    worker = threading.Thread(target=lambda: pytest.raises(typecheck.Interrupted, typecheck.check_batch,
                                                           [row], 60, typecheck.pyright_command(), processes))
    worker.start()
    for _ in range(600):
        if pid_file.exists() and pid_file.read_text():
            break
        time.sleep(0.1)
    child = int(pid_file.read_text())
    assert os.getpgid(child) == os.getpgid(0)
    processes.stop()  # kills the script and its child
    worker.join(30)
    assert not worker.is_alive() and _dies(child)
