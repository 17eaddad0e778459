"""`multiplt.log.progress` off a terminal (a pipe to an Airflow task log, a container's log, a
file): newline-terminated lines while the step runs, at most one per NON_TERMINAL_INTERVAL_S
(0 here: one per update, so nothing depends on the clock), the final state once; on a terminal a
bar redrawn in place; without tqdm, count lines in the log."""

import io
import logging
import subprocess
import sys

import pytest

from multiplt import log


def test_off_a_terminal_progress_is_lines_while_the_step_runs():
    """stderr is a pipe: every state is its own line before the bar is closed, no "\\r"."""
    pytest.importorskip("tqdm")
    code = ("import sys\n"
            "from multiplt import log\n"
            "log.NON_TERMINAL_INTERVAL_S = 0\n"
            "bar = log.progress(total=4, desc='generate', unit='sample')\n"
            "for _ in range(4):\n"
            "    bar.update(1)\n"
            "    bar.set_postfix(loss='0.5')\n"
            "print('STILL RUNNING', file=sys.stderr, flush=True)\n"
            "bar.close()\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True)  # bytes: "\r" kept
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert "\r" not in err and err.endswith("\n"), repr(err)
    before, after = err.split("STILL RUNNING\n")
    lines = before.splitlines()
    assert [line.split("|")[-1].split(" [")[0].strip() for line in lines] == \
        ["0/4", "1/4", "2/4", "3/4", "4/4"], before
    assert all(line.startswith("generate: ") for line in lines), before
    assert "loss=0.5" in lines[-1]  # a postfix shows with the next line
    assert after == ""  # the final state was already printed: once


def test_the_final_state_is_printed_once_by_close(monkeypatch):
    """Updates within the interval print nothing; close prints the final state, once."""
    pytest.importorskip("tqdm")
    monkeypatch.setattr(log, "NON_TERMINAL_INTERVAL_S", 1e9)
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    bar = log.progress(total=3, desc="testgen validate", unit="fn")
    for _ in range(3):
        bar.update(1)
    assert err.getvalue().count("\n") == 1 and "0/3 [" in err.getvalue()  # the first state only
    bar.close()
    bar.close()
    lines = err.getvalue().splitlines()
    assert len(lines) == 2 and "3/3 [" in lines[1] and "\r" not in err.getvalue(), err.getvalue()


def test_nested_bars_off_a_terminal_are_plain_lines(monkeypatch):
    """A bar opened inside another (evaluate's around generate's) moves no cursor and keeps its
    final state."""
    pytest.importorskip("tqdm")
    monkeypatch.setattr(log, "NON_TERMINAL_INTERVAL_S", 1e9)
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    outer = log.progress(total=2, desc="evaluate")
    inner = log.progress(total=3, desc="generate")
    inner.update(3)
    inner.close()
    outer.update(2)
    outer.close()
    lines = err.getvalue().splitlines()
    assert "\x1b" not in err.getvalue() and all(line.strip() for line in lines), err.getvalue()
    assert [line.split(":")[0] for line in lines] == ["evaluate", "generate", "generate", "evaluate"]
    assert "3/3 [" in lines[2] and "2/2 [" in lines[3]


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_on_a_terminal_the_bar_is_redrawn_in_place(monkeypatch):
    pytest.importorskip("tqdm")
    monkeypatch.setattr(log, "NON_TERMINAL_INTERVAL_S", 0)  # not used on a terminal
    err = _Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    bar = log.progress(total=2, desc="execute", unit="prog")
    bar.update(1)
    bar.update(1)
    bar.close()
    text = err.getvalue()
    assert text.startswith("\r") and "\r" in text[1:] and text.count("\n") == 1, repr(text)
    assert "2/2 [" in text


def test_without_tqdm_counts_are_logged_after_each_interval(monkeypatch):
    """The core install: count lines in the log, at doubling counts and once the interval has
    passed (0 here: at every update)."""
    monkeypatch.setitem(sys.modules, "tqdm", None)  # `from tqdm import tqdm` raises ImportError
    monkeypatch.setattr(log, "NON_TERMINAL_INTERVAL_S", 0)
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("multiplt")
    monkeypatch.setattr(logger, "level", logging.INFO)
    logger.addHandler(handler)
    try:
        bar = log.progress(total=5, desc="generate", unit="sample")
        for _ in range(5):
            bar.update(1)
        bar.close()
    finally:
        logger.removeHandler(handler)
    assert messages == [f"generate: {n}/5" for n in range(1, 6)] + ["generate: done, 5"]
