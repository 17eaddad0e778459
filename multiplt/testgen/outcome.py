"""What happens to one function after its asserts ran: kept with tests, coverage and types, or
dropped with a reason. The filters, in order, each keep or drop a function and are counted
(the funnel):

- `malformed_row`: the input row cannot be used (no content, no such function, ...);
- `duplicate_sha1`: a second row with the same sha1 (the first is used);
- `no_asserts`: no completion held an assert of the required shape;
- `no_passing_test`: none of its asserts passed alone in the sandbox;
- `flaky`: some of its asserts passed under the first hash seed, but none of those under the
  second too (validate.py: their verdict depends on the order of a set or dict of strings);
- `coverage_error`: the passing asserts could not be run together under coverage.py;
- `low_coverage`: statement coverage of the function's body under `--min-coverage`.
"""

from __future__ import annotations

import ast

from multiplt.testgen import annotate
from multiplt.testgen.validate import FLAKY, SCREEN_HASH_SEED, Check, checked_coverage

STEPS = ("malformed_row", "duplicate_sha1", "no_asserts", "no_passing_test", "flaky",
         "coverage_error", "low_coverage")


def prefix(context: str | None, content: str) -> str:
    """The program text every assert is appended to: the context, then the function."""
    return f"{context.rstrip()}\n\n\n{content}" if context and context.strip() else content


def body_lines(program: str, entrypoint: str) -> tuple[int, int]:
    """First and last line of the entry point's body in `program` (its last top-level def)."""
    found = None
    for node in ast.parse(program).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entrypoint:
            found = node
    return found.body[0].lineno, found.end_lineno


def coverage_percent(record: dict, span: tuple[int, int]) -> int:
    """Executed share of the body's statements, rounded down (89.9 -> 89)."""
    lo, hi = span
    statements = [s for s in record["statements"] if lo <= s <= hi]
    if not statements:
        return 100
    missing = {s for s in record["missing"] if lo <= s <= hi}
    return (100 * (len(statements) - len(missing))) // len(statements)


def decide(row: dict, check: Check | None, min_coverage: int) -> dict:
    """The outcome columns of one function: reason (None = kept), detail, tests, tests_failed,
    coverage, content_with_types, types_reason, assert statuses."""
    out = {"reason": None, "detail": None, "tests": [], "tests_failed": [], "coverage": None,
           "content_with_types": None, "types_reason": None}
    if check is None or not check.asserts:
        out.update(reason="no_asserts", detail="no completion held an assert "
                   f"`assert {row['entrypoint']}(positional args) == ...`")
        return out
    out["tests"] = check.passing
    out["tests_failed"] = [a for a, s in zip(check.asserts, check.statuses) if s != "OK"]
    if not out["tests"]:
        statuses = sorted({s for s in check.statuses})
        flaky = check.statuses.count(FLAKY)
        if flaky:
            from multiplt.languages.python import HASH_SEED

            out.update(reason="flaky", detail=f"{len(check.asserts)} assert(s), none passed under "
                       f"both hash seeds: {flaky} passed under PYTHONHASHSEED={SCREEN_HASH_SEED} "
                       f"only, not under {HASH_SEED} ({', '.join(statuses)})")
        else:
            out.update(reason="no_passing_test", detail=f"{len(check.asserts)} assert(s), none "
                       f"passed ({', '.join(statuses)})")
        return out
    program = prefix(row.get("context"), row["content"])
    # checked again here: a part saved by an earlier version may hold a malformed (forged) record
    record = checked_coverage(check.coverage or {"error": "no coverage run"}, program,
                              row["entrypoint"])
    if "error" in record:
        out.update(reason="coverage_error", detail=record["error"])
        return out
    out["coverage"] = coverage_percent(record, body_lines(program, row["entrypoint"]))
    out["content_with_types"], out["types_reason"] = annotate.annotate(
        row["content"], row["entrypoint"], record.get("signatures") or [])
    if out["coverage"] < min_coverage:
        out.update(reason="low_coverage",
                   detail=f"coverage {out['coverage']}% < {min_coverage}%")
    return out
