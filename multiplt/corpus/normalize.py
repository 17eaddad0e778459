"""Source normalizations: comments and layout away (`layout`), and, for decontamination, also
the docstring, annotations and the names of the function and its own variables (`canonical`),
so `def f(xs): return sum(x*x for x in xs)` and a reflowed, commented copy with other names
normalize to the same text."""

from __future__ import annotations

import ast
import copy
import re
import warnings

WHITESPACE = re.compile(r"\s+")


def squash(text: str) -> str:
    """Whitespace runs -> one space (docstrings reflowed or re-indented still match)."""
    return WHITESPACE.sub(" ", text).strip()


def parse_quietly(text: str) -> ast.Module | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def layout(node: ast.AST) -> str:
    """The code without comments, with canonical whitespace and quoting."""
    return ast.unparse(node)


def _local_names(fn) -> list[str]:
    """The function's name, its parameters and every name it assigns, in order of appearance."""
    names = [fn.name]
    args = fn.args
    for a in [*args.posonlyargs, *args.args, args.vararg, *args.kwonlyargs, args.kwarg]:
        if a is not None:
            names.append(a.arg)
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.append(node.id)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.append(node.name)
    return list(dict.fromkeys(names))


class _Renamer(ast.NodeTransformer):
    def __init__(self, mapping: dict[str, str]):
        self.mapping = mapping

    def visit_Name(self, node):
        node.id = self.mapping.get(node.id, node.id)
        return node

    def visit_arg(self, node):
        node.arg = self.mapping.get(node.arg, node.arg)
        node.annotation = None
        return node

    def visit_ExceptHandler(self, node):
        if node.name:
            node.name = self.mapping.get(node.name, node.name)
        self.generic_visit(node)
        return node


def canonical(fn) -> str:
    """`fn` (a FunctionDef) without docstring, annotations or comments, its own names renamed
    v0, v1, ... in order of appearance."""
    fn = copy.deepcopy(fn)
    mapping = {name: f"v{i}" for i, name in enumerate(_local_names(fn))}
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:] or [ast.Pass()]
    fn.body = body
    fn.returns = None
    fn.decorator_list = []
    fn = _Renamer(mapping).visit(fn)
    fn.name = mapping[fn.name] if fn.name in mapping else fn.name
    return ast.unparse(fn)
