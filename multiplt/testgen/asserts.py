"""Pull `assert <entrypoint>(positional args) == <expr>` statements out of model text, with `ast`.

A completion is cut into the shortest runs of lines that parse as Python, from the top; a line
that starts no parsable run is skipped and counted as unparsable. Of the statements found, only
top-level asserts of exactly that shape are kept (MultiPL-T's rule): at least one positional
argument, no keyword arguments (rejected as MultiPL-T does), no `*args`/`**kwargs`, one `==`, no
assert message. Unlike MultiPL-T, the arguments and the expected value must also be plain
literals (what `ast.literal_eval` reads: numbers, strings, None, True/False, lists, tuples,
sets, dicts of them), as `multiplt translate` needs to write the test in another language: an
expected value that calls the function (`assert f(1) == f(1)`), `unittest.mock.ANY` or any
other expression tests nothing there, yet would count towards coverage. Kept asserts are written back with `ast.unparse` (one normal form) and
deduplicated across a function's samples, first seen first.
"""

from __future__ import annotations

import ast
import collections
import dataclasses

from multiplt.corpus.normalize import parse_quietly

# Reasons an extracted statement is not kept (counted per function and in the funnel).
UNPARSABLE = "unparsable"
KEYWORD_ARGUMENT = "keyword_argument"
NOT_ENTRYPOINT_ASSERT = "not_entrypoint_assert"
ARGUMENT_NOT_LITERAL = "argument_not_literal"
EXPECTED_NOT_LITERAL = "expected_not_literal"
DUPLICATE = "duplicate"
_MAX_SPAN = 40  # lines one statement may span


@dataclasses.dataclass
class Parsed:
    asserts: list[str]
    counts: collections.Counter


def _statements(text: str, counts: collections.Counter):
    lines = text.split("\n")
    start = 0
    while start < len(lines):
        if not lines[start].strip():
            start += 1
            continue
        for end in range(start + 1, min(len(lines), start + _MAX_SPAN) + 1):
            chunk = "\n".join(lines[start:end])
            # without the parser's warnings (e.g. "invalid decimal literal" in the model's text):
            # noise, the parse decides
            tree = parse_quietly(chunk)
            if tree is None:
                continue
            yield from tree.body
            start = end
            break
        else:
            counts[UNPARSABLE] += 1
            start += 1


def classify(stmt: ast.stmt, entrypoint: str) -> str | None:
    """None when `stmt` is a test MultiPL-T keeps, else the reason it is not."""
    if not isinstance(stmt, ast.Assert) or stmt.msg is not None:
        return NOT_ENTRYPOINT_ASSERT
    test = stmt.test
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return NOT_ENTRYPOINT_ASSERT
    call = test.left
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
            and call.func.id == entrypoint):
        return NOT_ENTRYPOINT_ASSERT
    if call.keywords:
        return KEYWORD_ARGUMENT if any(k.arg is not None for k in call.keywords) \
            else NOT_ENTRYPOINT_ASSERT
    if not call.args or any(isinstance(a, ast.Starred) for a in call.args):
        return NOT_ENTRYPOINT_ASSERT
    if not all(_literal(a) for a in call.args):
        return ARGUMENT_NOT_LITERAL
    if not _literal(test.comparators[0]):
        return EXPECTED_NOT_LITERAL
    return None


def _literal(node: ast.expr) -> bool:
    """Whether `node` is a plain value `ast.literal_eval` reads (translate reads tests so)."""
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        return False
    return True


def parse(texts: list[str], entrypoint: str) -> Parsed:
    """The kept asserts of all `texts` (a function's samples, each already starting with the
    opened assert line), deduplicated; `counts` has `kept` and every reason."""
    counts: collections.Counter = collections.Counter()
    kept: list[str] = []
    seen: set[str] = set()
    for text in texts:
        for stmt in _statements(text, counts):
            reason = classify(stmt, entrypoint)
            if reason:
                counts[reason] += 1
                continue
            normal = ast.unparse(stmt)
            if normal in seen:
                counts[DUPLICATE] += 1
                continue
            seen.add(normal)
            kept.append(normal)
            counts["kept"] += 1
    return Parsed(kept, counts)
