"""Logging, funnels and progress: every stage logs how many records it kept and dropped, and why."""

from __future__ import annotations

import collections
import logging
import sys

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


def progress(iterable=None, total: int | None = None, desc: str = "", unit: str = "it"):
    """A tqdm bar on stderr when tqdm is installed, else periodic counts in the log."""
    try:
        from tqdm import tqdm
    except ImportError:  # the core install has no tqdm; fall back to counts
        return _CountingProgress(iterable, total, desc)
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True,
                mininterval=1.0)


class _CountingProgress:
    def __init__(self, iterable, total, desc):
        self.iterable, self.total, self.desc, self.n = iterable, total, desc, 0
        self._next_report = 1

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.n >= self._next_report:
            LOG.info("%s: %d/%s", self.desc, self.n, self.total if self.total is not None else "?")
            self._next_report = self.n * 2

    def set_postfix(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        LOG.info("%s: done, %d", self.desc, self.n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
