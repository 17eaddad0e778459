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
    import subprocess

    from multiplt.corpus import typecheck

    real_run = subprocess.run
    sizes = []

    def slow_for_big_batches(argv, **kwargs):
        import os
        files = [f for f in os.listdir(kwargs["cwd"]) if f.endswith(".py")]
        sizes.append(len(files))
        if len(files) > 2 or any("first_digit" in open(os.path.join(kwargs["cwd"], f)).read()
                                 for f in files):
            raise subprocess.TimeoutExpired(argv, kwargs["timeout"])
        return real_run(argv, **kwargs)

    monkeypatch.setattr(typecheck.subprocess, "run", slow_for_big_batches)
    kept, dropped = run(rows_of(MODULE))
    assert sizes[0] == 5 and max(sizes[1:]) <= 3
    assert kept == ["squash", "uses_broken", "unused_import_is_fine"]
    assert dropped["first_digit"] == "pyright timed out after 300 s on this file alone"
    assert dropped["unknown"].startswith("reportUndefinedVariable")
