"""Logging, funnels and progress: every stage logs how many records it kept and dropped, and why."""

from __future__ import annotations

import collections
import functools
import logging
import re
import sys
import time

LOG = logging.getLogger("multiplt")


def setup_logging(verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("multiplt")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


class Funnel:
    """Counts records in, kept, and dropped by reason, and logs them as one line per stage."""

    def __init__(self, stage: str):
        self.stage = stage
        self.seen = 0
        self.kept = 0
        self.dropped: collections.Counter[str] = collections.Counter()

    def keep(self, n: int = 1) -> None:
        self.seen += n
        self.kept += n

    def drop(self, reason: str, n: int = 1) -> None:
        self.seen += n
        self.dropped[reason] += n

    def as_dict(self) -> dict:
        return {"stage": self.stage, "in": self.seen, "kept": self.kept, "dropped": dict(self.dropped)}

    def log(self, logger: logging.Logger = LOG) -> None:
        reasons = ", ".join(f"{r}={n}" for r, n in self.dropped.most_common()) or "none"
        logger.info("%s funnel: in=%d kept=%d dropped=%d (%s)", self.stage, self.seen, self.kept,
                    sum(self.dropped.values()), reasons)


# Seconds between two progress lines when stderr is no terminal (a pipe to an Airflow task log, a
# container's log, a file): each line is one state of the bar, newline-terminated.
NON_TERMINAL_INTERVAL_S = 30.0


def progress(iterable=None, total: int | None = None, desc: str = "", unit: str = "it"):
    """Progress of a stage on stderr. On a terminal: a tqdm bar redrawn in place. Otherwise (a
    pipe, a file, a container log): one newline-terminated line per state of the bar: the first
    state at once, then at most one line every NON_TERMINAL_INTERVAL_S seconds (printed by an
    update), and the final state once, so a log collector shows progress while the stage runs.
    Without tqdm (the core install): count lines in the log, at doubling counts and at the first
    update NON_TERMINAL_INTERVAL_S seconds after the last line."""
    try:
        from tqdm import tqdm
    except ImportError:  # the core install has no tqdm; fall back to counts
        return _CountingProgress(iterable, total, desc)
    stream = sys.stderr
    if _is_terminal(stream):
        return tqdm(iterable, total=total, desc=desc, unit=unit, file=stream, dynamic_ncols=True,
                    mininterval=1.0)
    return _line_bar_class(tqdm)(iterable, total=total, desc=desc, unit=unit, file=_Lines(stream),
                                 mininterval=NON_TERMINAL_INTERVAL_S, miniters=1, leave=True)


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


@functools.cache
def _line_bar_class(tqdm):
    """tqdm for a stream that is no terminal: a postfix shows with the next line instead of
    printing one of its own (callers set it every step), and close prints the final state (also
    of a nested bar) only when the last line printed is not already it."""

    class LineBar(tqdm):
        def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
            super().set_postfix(ordered_dict, refresh=False, **kwargs)

        def close(self):
            if not self.disable and self.last_print_n == self.n:
                self.leave = False  # its clearing is a blank state, which _Lines drops
            super().close()

    return LineBar


class _Lines:
    """The stream of a progress bar on something that is no terminal: tqdm redraws its bar in place
    ("\\r" + state, then a flush); here every flushed state becomes a line of its own ending in
    "\\n". Blank states and cursor movements (of nested bars) are dropped."""

    _ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

    def __init__(self, stream):
        self.stream = stream
        self._pending = ""

    @property
    def encoding(self):
        return getattr(self.stream, "encoding", None)

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        self._pending += self._ESCAPE.sub("", text)
        return len(text)

    def flush(self) -> None:
        lines = [part.rstrip() for part in re.split(r"[\r\n]", self._pending)]
        self._pending = ""
        text = "".join(line + "\n" for line in lines if line)
        if text:
            self.stream.write(text)
        getattr(self.stream, "flush", lambda: None)()


class _CountingProgress:
    def __init__(self, iterable, total, desc):
        self.iterable, self.total, self.desc, self.n = iterable, total, desc, 0
        self._next_report = 1
        self._last_time = time.monotonic()

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if self.n >= self._next_report or now - self._last_time >= NON_TERMINAL_INTERVAL_S:
            LOG.info("%s: %d/%s", self.desc, self.n, self.total if self.total is not None else "?")
            self._next_report = self.n * 2
            self._last_time = now

    def set_postfix(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        LOG.info("%s: done, %d", self.desc, self.n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
