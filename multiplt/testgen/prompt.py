"""The test-generation prompt, as MultiPL-T builds it (described in its test_gen.py).

The function's source, a blank line, three comment lines (a header naming the function, the rule
that tests are `assert <fn>(...) == ...`, the rule that keyword arguments are not allowed), the
already-known tests in a shuffled order, and a last line opening `assert <fn>(`. The model's
completion continues that last line; `completion_text` glues them back together.
"""

from __future__ import annotations

import hashlib
import random

from multiplt.errors import MultipltError

# Where a completion stops: a new top-level definition or statement that is not an assert.
STOP_TOKENS = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n```")


def opening(entrypoint: str) -> str:
    return f"assert {entrypoint}("


def build(content: str, entrypoint: str, known_tests: list[str] = (), seed_key: str = "") -> str:
    """The prompt for one function; known tests are shuffled with a seed taken from `seed_key`
    (the function's sha1), so the same function always gets the same prompt."""
    tests = list(known_tests)
    rng = random.Random(int.from_bytes(hashlib.sha256(seed_key.encode()).digest()[:8], "little"))
    rng.shuffle(tests)
    lines = [content.rstrip("\n"), "",
             f"# Unit tests for {entrypoint}",
             f"# Every test is strictly of the form: assert {entrypoint}(...) == ...",
             "# Keyword arguments are not allowed in the calls",
             *[t.rstrip("\n") for t in tests],
             opening(entrypoint)]
    return "\n".join(lines)


def tests_problem(tests) -> str | None:
    """Why a row's `tests` value cannot be its known tests (None when it can: a list of str, or
    None/missing for none)."""
    if tests is None:
        return None
    if not isinstance(tests, (list, tuple)):
        return f"tests is a {type(tests).__name__}, not a list of strings"
    bad = [t for t in tests if not isinstance(t, str)]
    if bad:
        return f"tests holds a {type(bad[0]).__name__}, not only strings"
    return None


def known_tests(row: dict) -> list[str]:
    """The row's known tests (its optional `tests` column); MultipltError naming the row for any
    value but a list of str (a string would otherwise become one test per character)."""
    why = tests_problem(row.get("tests"))
    if why:
        raise MultipltError(f"function {row.get('sha1')} ({row.get('id')}): {why}")
    return list(row.get("tests") or [])


def generation_row(row: dict) -> dict:
    """A corpus function (sha1, content, entrypoint, optional tests) as a row of the generation
    driver's benchmark format, named by its sha1."""
    return {"name": row["sha1"], "language": "py", "tests": "", "stop_tokens": list(STOP_TOKENS),
            "prompt": build(row["content"], row["entrypoint"], known_tests(row), row["sha1"])}


def completion_text(entrypoint: str, completion: str) -> str:
    """The Python text a completion stands for: the opened assert line plus what followed."""
    return opening(entrypoint) + completion
