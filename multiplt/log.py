"""Logging, funnels and progress: every stage logs how many records it kept and dropped, and why."""

from __future__ import annotations

import collections
import functools
import logging
import os
import re
import sys
import time

LOG = logging.getLogger("multiplt")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The switches of the Hugging Face libraries' own progress bars (transformers' "Loading weights"
# and "Writing model shards" follow huggingface_hub's; datasets has its own). Their bars redraw in
# place with "\r" (and cursor moves), so off a terminal they are turned off; a value the user set
# is kept.
HF_PROGRESS_SWITCHES = ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS")

# Warnings of other libraries that say nothing to act on, shown only with --verbose (as DEBUG):
# accelerate's, when it saves the training state of a model with tied weights (GPTBigCode's
# lm_head is its token embedding), at every epoch; loading the state ties them again.
KNOWN_NOISE = (("accelerate.", "Removed shared tensor "),)


def setup_logging(verbose: bool = False) -> None:
    """multiplt's log lines on stderr (DEBUG with `verbose`, else INFO); other libraries' warnings
    that no handler of theirs prints get the same prefix instead of Python's bare line; off a
    terminal the Hugging Face libraries' progress bars are off (`quiet_library_progress`)."""
    level = logging.DEBUG if verbose else logging.INFO
    formatter = logging.Formatter(FORMAT)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger("multiplt")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    others = _LibraryWarnings(sys.stderr, verbose)
    others.setFormatter(formatter)
    top = logging.getLogger()
    top.handlers[:] = [h for h in top.handlers if not isinstance(h, _LibraryWarnings)] + [others]
    if not _is_terminal(sys.stderr):
        quiet_library_progress()


class _LibraryWarnings(logging.StreamHandler):
    """On the root logger: a warning (or worse) of another library that reaches it with no
    handler of its own on the way (accelerate has none), which Python would print bare as its
    last resort. Records a library's own handler printed already (huggingface_hub's, datasets')
    are not printed twice; KNOWN_NOISE becomes DEBUG, printed only when verbose."""

    def __init__(self, stream, verbose: bool):
        super().__init__(stream)
        self.setLevel(logging.WARNING)
        self.verbose = verbose

    def filter(self, record) -> bool:
        logger = logging.getLogger(record.name)
        while logger is not None and logger is not logging.root:
            if logger.handlers:
                return False
            logger = logger.parent
        for prefix, text in KNOWN_NOISE:
            if (record.name + ".").startswith(prefix) and text in record.getMessage():
                record.levelno, record.levelname = logging.DEBUG, "DEBUG"
                return self.verbose
        return super().filter(record)


def quiet_library_progress() -> None:
    """Turn the progress bars of huggingface_hub, transformers and datasets off through their own
    switches (HF_PROGRESS_SWITCHES, read when they are imported, and kept by the processes this
    one starts), unless the user set them; a library imported already is told directly. Imports
    none of them."""
    for name in HF_PROGRESS_SWITCHES:
        os.environ.setdefault(name, "1")
    on = {name: os.environ[name].strip().upper() in ("1", "ON", "YES", "TRUE")
          for name in HF_PROGRESS_SWITCHES}
    if on["HF_HUB_DISABLE_PROGRESS_BARS"]:
        if "huggingface_hub.utils" in sys.modules:
            sys.modules["huggingface_hub.utils"].disable_progress_bars()
        if "transformers.utils.logging" in sys.modules:
            sys.modules["transformers.utils.logging"].disable_progress_bar()
    if on["HF_DATASETS_DISABLE_PROGRESS_BARS"] and "datasets.utils.tqdm" in sys.modules:
        sys.modules["datasets.utils.tqdm"].disable_progress_bars()


def drop_reasons(steps: list[dict]) -> list[str]:
    """What a funnel's steps dropped, as the corpus build and testgen name it when a run kept no
    function: `reason n` for each step of `steps` ({"name", "in", "out"}, and the corpus'
    `reason`) whose `out` is less than its `in`, most dropped first, then by reason."""
    drops = sorted(((s["in"] - s["out"], s.get("reason") or s["name"]) for s in steps if s["in"] > s["out"]),
                   key=lambda d: (-d[0], d[1]))
    return [f"{reason} {n}" for n, reason in drops]


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
