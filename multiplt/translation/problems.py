"""Step-1 rows (a Python function and its passing asserts) -> MultiPL-E-style problems, as MultiPL-T.

The prompt, top to bottom: the canonical Python body as a comment block headed
`## Canonical Python Solution ##` (each line prefixed `# `), the reworded docstring with its
doctests translated, then the target signature. Julia and OCaml need types: their signature comes
from `content_with_types`, and a row without usable annotations is skipped with a reason. The
tests are the row's `assert f(args) == expected` lines, normalized by the benchmark builder's
assert matcher and rendered by the language layer through the benchmark builder's own
`translate`: the same translator as `multiplt benchmark build`, not a second one. Untranslatable
asserts are dropped one by one (MultiPL-E's `--skip-failing-tests`); a problem left with none is
dropped with the reason. The tests are then sealed (`Language.seal_tests`): after them the
program prints the problem's own random nonce (`tests_nonce`, never in the prompt) once every
test ran and passed, and a translation counts as passing only when its run printed it
(collect.passed), so one that exits before or instead of running its tests is not kept.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import re
import secrets
import textwrap

from multiplt.benchmarks import asserts
from multiplt.benchmarks import build as builder
from multiplt.benchmarks.analyze import Analysis
from multiplt.benchmarks.prompts import PromptError, parse_prompt
from multiplt.benchmarks.sources import SourceProblem
from multiplt.languages.base import Language, Param, TestCase
from multiplt.languages.types import UNKNOWN, TypeParseError, of_value, refine, unify

CANONICAL_HEADER = "## Canonical Python Solution ##"


@dataclasses.dataclass
class Problem:
    """A built problem (`row`: a benchmark JSONL row) or why there is none (`reason`, `drop`)."""

    row: dict | None
    reason: str | None = None
    drop: str | None = None  # the short reason counted in the funnel
    dropped_tests: list = dataclasses.field(default_factory=list)


class SourceError(ValueError):
    """The Python function cannot be split into signature, docstring and body."""


def split_function(source: str, entrypoint: str) -> tuple[str, str]:
    """(a prompt of just the signature and docstring, the dedented body after the docstring)."""
    try:
        module = ast.parse(source)
    except SyntaxError as exc:
        raise SourceError(f"the function does not parse: {exc.msg}") from None
    funcs = [n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == entrypoint]
    if not funcs:
        raise SourceError(f"no top-level function {entrypoint!r}")
    fn = funcs[-1]
    first = fn.body[0]
    if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)):
        raise SourceError("the function does not start with a docstring")
    if len(fn.body) < 2:
        raise SourceError("the function has nothing but a docstring")
    head = copy.copy(fn)
    head.body, head.decorator_list = [first], []
    prompt = ast.unparse(head) + "\n"
    # ast counts lines at \r\n, \r and \n only; str.splitlines also cuts at \f, U+2028, ...
    lines = re.split(r"\r\n|\r|\n", source)
    if fn.body[1].lineno > first.end_lineno:
        # a line of only form feeds and blanks is a blank line to Python; as "" it lets dedent work
        body = "\n".join(re.sub(r"^[ \t\f]+$", "", line)
                         for line in lines[first.end_lineno:fn.end_lineno])
    else:  # the body shares the docstring's last line
        body = "\n".join(ast.unparse(st) for st in fn.body[1:])
    return prompt, textwrap.dedent(body).strip("\n")


def canonical_block(body: str) -> str:
    """The comment text that shows the Python solution (the language adds its comment markers)."""
    lines = [CANONICAL_HEADER] + [f"# {line}".rstrip() for line in body.split("\n")]
    return "\n".join(lines) + "\n"


def parse_tests(tests: list[str], entrypoint: str) -> tuple[list, dict, dict]:
    """(sites, cases by site, drop reason by site) for `assert entrypoint(args) == expected` lines.
    Values must be plain literals; an assert whose call repeats another's with another expected
    value conflicts, and both go (as MultiPL-E); an exact repeat is dropped as a duplicate."""
    sites, cases, drops = [], {}, {}
    for i, text in enumerate(tests):
        site = asserts.Site(i, i + 1, str(text)[:300], asserts.EQUAL)
        sites.append(site)
        try:
            stmts = ast.parse(str(text).strip()).body
        except SyntaxError:
            drops[i] = "the test does not parse"
            continue
        if len(stmts) != 1 or not isinstance(stmts[0], ast.Assert):
            drops[i] = "not a single assert statement"
            continue
        mode, call, expected, _tol, reason = asserts.match(stmts[0].test, (entrypoint,))
        if mode != asserts.EQUAL or call is None:
            drops[i] = reason or f"not an `assert {entrypoint}(...) == value`"
            site.mode = asserts.UNSUPPORTED
            continue
        try:
            case = TestCase(tuple(ast.literal_eval(a) for a in call.args), ast.literal_eval(expected))
            for v in (*case.args, case.expected):
                of_value(v)
        except (ValueError, TypeError, SyntaxError, TypeParseError, RecursionError, MemoryError) as exc:
            # without the node's address (`<ast.Call object at 0x7f...>`): the same text every run
            drops[i] = f"a value is not a supported literal ({re.sub(r' at 0x[0-9a-f]+', '', str(exc))[:80]})"
            continue
        cases[i] = [case]
    by_call: dict[str, list[int]] = {}
    for i, (case,) in cases.items():
        by_call.setdefault(repr(case.args), []).append(i)
    for same in by_call.values():
        expected = {repr(cases[i][0].expected) for i in same}
        for n, i in enumerate(same):
            if len(expected) > 1:
                drops[i] = "conflicting tests: the same call expects different values"
            elif n:
                drops[i] = f"duplicate of test {same[0]}"
    for i in drops:
        cases.pop(i, None)
    return sites, cases, drops


def _types(sig, cases: dict, strict: bool) -> tuple[list[Param], object]:
    observed = [UNKNOWN] * len(sig.arg_names)
    returned = UNKNOWN
    for (case,) in cases.values():
        if len(case.args) == len(observed):
            observed = [unify(t, of_value(v)) for t, v in zip(observed, case.args)]
            returned = unify(returned, of_value(case.expected))
    if strict:
        missing = [n for n, a in zip(sig.arg_names, sig.annotations) if a is None]
        if missing or sig.returns is None:
            what = f"parameter(s) {', '.join(missing)}" if missing else "the return value"
            raise SourceError(f"{what} have no type annotation in content_with_types")
    params = [Param(n, refine(a, o)) for n, a, o in zip(sig.arg_names, sig.annotations, observed)]
    return params, refine(sig.returns, returned)


def new_nonce() -> str:
    """A problem's end-of-tests nonce: 32 random hex digits, made when its problem is built."""
    return secrets.token_hex(16)


def build_problem(row: dict, lang: Language, nonce: str | None = None) -> Problem:
    """The MultiPL-E-style problem for one step-1 row in `lang`, named by the row's sha1, with
    its tests sealed by `nonce` (a fresh `new_nonce()` when None)."""
    entrypoint, sha1 = row["entrypoint"], row["sha1"]
    if lang.strict_types:
        source = row.get("content_with_types")
        if not source:
            return Problem(None, f"{lang.code} needs types and content_with_types is empty",
                           "no inferred types")
    else:
        source = row["content"]
    try:
        prompt_py, body = split_function(source, entrypoint)
        sig = parse_prompt(prompt_py, entrypoint)
        sites, cases, drops = parse_tests(list(row.get("tests") or []), entrypoint)
        params, returns = _types(sig, cases, lang.strict_types)
    except PromptError as exc:
        return Problem(None, f"signature: {exc}", "unsupported signature")
    except SourceError as exc:
        drop = "untyped signature" if "type annotation" in str(exc) else "unsupported function"
        return Problem(None, str(exc), drop)
    dropped = [{"test": sites[i].source, "reason": r} for i, r in sorted(drops.items())]
    problem = SourceProblem(sha1, prompt_py, entrypoint, "", body, f"{row.get('id')}")
    an = Analysis(problem, sig, params, returns, sites, cases, drops)
    built = builder.translate(an, lang, min_asserts=1, preamble=canonical_block(body))
    dropped += [{"test": d["assert"], "reason": d["reason"]}
                for d in built.report.get("dropped_asserts", []) if d["line"] - 1 not in drops]
    if built.row is None:
        reason = built.report.get("reason", "not translatable")
        drop = built.report.get("drop", "not translatable")
        if drop == "too few asserts translate":
            drop = "no test translates"
        return Problem(None, reason, drop, dropped)
    clean = builder.translate(an, lang, min_asserts=1).row
    nonce = new_nonce() if nonce is None else nonce
    out = {**built.row, "tests": lang.seal_tests(built.row["tests"], nonce), "tests_nonce": nonce,
           "name": sha1, "clean_prompt": clean["prompt"], "sha1": sha1,
           "id": row.get("id"), "entrypoint": entrypoint,
           "translated_tests": built.report["translated_asserts"], "source_tests": len(sites)}
    return Problem(out, dropped_tests=dropped)
