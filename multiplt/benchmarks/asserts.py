"""Normalize a HumanEval `check(candidate)` function into equality asserts.

HumanEval's checks are Python, not data: `assert candidate(x) == y`, but also bare truthiness
(`assert candidate(x)`, `assert not candidate(x)`), identity (`is True`), tolerance comparisons
(`abs(candidate(x) - y) < 1e-6`), `tuple(candidate(x)) == tuple(y)`, asserts inside loops over
random or computed inputs, property checks (`poly(xs, candidate(xs)) ~ 0`) and `assert True`.

Each assert statement is a *site*. `normalize` classifies every site and rewrites each
translatable one into a call `__multiplt_record(site, (args...), expected, tolerance, mode)`; the
probe (`multiplt.benchmarks.probe`) then runs the rewritten check with the canonical solution as
the candidate, so every site yields the concrete argument and expected values it checks, even in
loops. Sites that assert something other than the candidate's result are dropped with a reason.
"""

from __future__ import annotations

import ast
import dataclasses

RECORD = "__multiplt_record"

# what a site asserts; only EQUAL/TOLERANCE/TRUTHY sites translate
EQUAL, TOLERANCE, TRUTHY, TRIVIAL, UNSUPPORTED = "equal", "tolerance", "truthy", "trivial", "unsupported"


@dataclasses.dataclass
class Site:
    index: int
    line: int
    source: str
    mode: str
    reason: str = ""


def _is_call_to(node: ast.AST, callees) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in callees and not node.keywords
            and not any(isinstance(a, ast.Starred) for a in node.args))


def _unwrap(node: ast.AST, *funcs: str) -> ast.AST | None:
    """`f(x)` -> `x` when f is one of `funcs` and the call has exactly one argument."""
    if (isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute))
            and (getattr(node.func, "id", None) or getattr(node.func, "attr", None)) in funcs
            and len(node.args) == 1 and not node.keywords):
        return node.args[0]
    return None


def match(test: ast.expr, callees=("candidate",)
          ) -> tuple[str, ast.Call | None, ast.expr | None, ast.expr | None, str]:
    """Classify one assert test: (mode, candidate call, expected expr, tolerance expr, reason).
    `callees` name the function under test: `candidate`, and the entry point itself (MBPP-style
    tests converted to HumanEval format often call the function by name)."""

    def _is_candidate_call(node):
        return _is_call_to(node, callees)

    if isinstance(test, ast.Constant) and test.value is True:
        return TRIVIAL, None, None, None, "assert True tests nothing"
    if _is_candidate_call(test):
        return TRUTHY, test, ast.Constant(True), None, ""
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) and _is_candidate_call(test.operand):
        return TRUTHY, test.operand, ast.Constant(False), None, ""
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        left, op, right = test.left, test.ops[0], test.comparators[0]
        if isinstance(op, ast.Eq):
            for a, b in ((left, right), (right, left)):
                if _is_candidate_call(a):
                    return EQUAL, a, b, None, ""
                inner = _unwrap(a, "tuple")
                if inner is not None and _is_candidate_call(inner):
                    # tuple(candidate(x)) == tuple(y): an order-preserving sequence equality
                    expected = _unwrap(b, "tuple") or b
                    return EQUAL, inner, ast.Call(ast.Name("list", ast.Load()), [expected], []), None, ""
        if isinstance(op, ast.Is) and _is_candidate_call(left) and isinstance(right, ast.Constant) \
                and right.value in (True, False, None):
            return EQUAL, left, right, None, ""
        if isinstance(op, (ast.Lt, ast.LtE)):
            diff = _unwrap(left, "abs", "fabs")
            if isinstance(diff, ast.BinOp) and isinstance(diff.op, ast.Sub):
                for a, b in ((diff.left, diff.right), (diff.right, diff.left)):
                    if _is_candidate_call(a):
                        return TOLERANCE, a, b, right, ""
    if any(_is_candidate_call(n) for n in ast.walk(test)):
        return UNSUPPORTED, None, None, None, "asserts a property, not the candidate's result"
    return UNSUPPORTED, None, None, None, ("checks a property of values computed before the assert, "
                                              "not an equality on the candidate's result")


class _Rewriter(ast.NodeTransformer):
    def __init__(self, callees):
        self.callees = callees
        self.sites: list[Site] = []

    def visit_Assert(self, node: ast.Assert):  # noqa: N802
        mode, call, expected, tol, reason = match(node.test, self.callees)
        site = Site(len(self.sites), node.lineno, ast.unparse(node.test)[:300], mode, reason)
        self.sites.append(site)
        if call is None:
            return node
        args = ast.Tuple(list(call.args), ast.Load())
        record = ast.Call(ast.Name(RECORD, ast.Load()),
                          [ast.Constant(site.index), args, expected, tol or ast.Constant(None),
                           ast.Constant(mode)], [])
        return ast.copy_location(ast.Expr(record), node)


class CheckError(ValueError):
    pass


def normalize(test_source: str, entry_point: str | None = None) -> tuple[str, list[Site]]:
    """The test module with the `check` function's asserts rewritten, and its sites."""
    try:
        module = ast.parse(test_source)
    except SyntaxError as exc:
        raise CheckError(f"the test code does not parse: {exc}") from None
    checks = [n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "check"]
    if not checks:
        raise CheckError("the test code defines no check(candidate) function")
    rewriter = _Rewriter({"candidate", entry_point} - {None})
    rewriter.visit(checks[-1])
    ast.fix_missing_locations(module)
    return ast.unparse(module), rewriter.sites
