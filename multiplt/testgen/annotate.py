"""`content_with_types`: the function with annotations inferred from the values its passing tests
showed (the runner records the type of every argument and result of every call of the entry
point while they ran together).

The types are the benchmark builder's (`multiplt.languages.types`): each observed value type is
unified over all calls, and an annotation the function already has is kept, its bare parts
(`list`) filled from what was seen (`refine`). Only what MultiPL-E's typed translators accept is
written: int, float, bool, str, List, Tuple, Dict, Optional. A Union, Any, an unknown part (an
empty list only), a value of another type (set, a class), `*args`/`**kwargs`, keyword-only
parameters or a parameter no test passed (positionally: one passed by keyword only, or left to
a default that is no literal, None or an empty container) give no annotation, and the reason
says which.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize

from multiplt.languages.types import (ANY, UNKNOWN, PyType, TypeParseError, of_value, parse,
                                      refine, unify, unify_all)

_TYPING = ("List", "Tuple", "Dict", "Optional")


class NoTypes(Exception):
    """Why no annotation can be written."""


def from_tree(tree) -> PyType:
    """The PyType of one runner type tree (["int"], ["list", [elems]], ["other", name], ...)."""
    kind = tree[0]
    if kind in ("int", "float", "bool", "str", "none"):
        return PyType(kind)
    if kind == "list":
        return PyType("list", (unify_all(from_tree(t) for t in tree[1]),))
    if kind == "vtuple":
        return PyType("vtuple", (unify_all(from_tree(t) for t in tree[1]),))
    if kind == "tuple":
        return PyType("tuple", tuple(from_tree(t) for t in tree[1]))
    if kind == "dict":
        return PyType("dict", (unify_all(from_tree(t) for t in tree[1]),
                               unify_all(from_tree(t) for t in tree[2])))
    raise NoTypes(f"a value of type {tree[1] if len(tree) > 1 else kind} was seen")


def _check_writable(t: PyType, where: str) -> None:
    if t.kind == "union":
        raise NoTypes(f"{where} is a Union ({t})")
    if t.kind == "any":
        raise NoTypes(f"{where} is Any")
    if t.kind == "unknown":
        raise NoTypes(f"{where} has an unknown part (only empty containers were seen)")
    if t.kind == "none":
        raise NoTypes(f"{where} is (or holds a part that is) always None")
    for a in t.args:
        _check_writable(a, where)


def _never_passed(name: str, default, default_type: PyType | None, default_why: str | None,
                  keywords: set) -> None:
    """Raise NoTypes saying why parameter `name`, which no recorded call passed positionally (the
    runner records positional arguments' types only), has no writable type: it was passed by
    keyword only, no test passed it and it has no default, or its default gives none."""
    if name in keywords:
        raise NoTypes(f"parameter {name} was passed only by keyword, whose values are not recorded")
    if default is None:
        raise NoTypes(f"no test passed parameter {name}")
    source = ast.unparse(default)
    source = source if len(source) <= 40 else source[:37] + "..."
    where = f"no test passed parameter {name}, and its default ({source})"
    if default_why or default_type.kind == "none":
        raise NoTypes(f"{where} {default_why or 'is None'}")
    _check_writable(default_type, where)  # else the annotation it has is what cannot be written


def _function(content: str, entrypoint: str) -> ast.FunctionDef:
    tree = ast.parse(content)
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entrypoint:
            return node
    raise NoTypes(f"no top-level function {entrypoint} in content")


def infer(content: str, entrypoint: str, signatures: list) -> tuple[list[PyType], PyType]:
    """Parameter and return types from the recorded call signatures; raises NoTypes."""
    fn = _function(content, entrypoint)
    a = fn.args
    if a.vararg or a.kwarg or a.kwonlyargs:
        raise NoTypes("the function takes *args, **kwargs or keyword-only parameters")
    params = a.posonlyargs + a.args
    observed = [UNKNOWN] * len(params)
    returned = UNKNOWN
    seen, passed, keywords = 0, 0, set()  # calls; most positional arguments of one; keyword names
    for arg_trees, result_tree, kwargs in signatures:
        if len(arg_trees) > len(params):
            continue
        for i, tree in enumerate(arg_trees):
            observed[i] = unify(observed[i], from_tree(tree))
        returned = unify(returned, from_tree(result_tree))
        seen += 1
        passed = max(passed, len(arg_trees))
        keywords.update(kwargs)
    if not seen:
        raise NoTypes("no call of the function was recorded")
    defaults = [None] * (len(params) - len(a.defaults)) + list(a.defaults)
    types = []
    for i, (p, obs, default) in enumerate(zip(params, observed, defaults)):
        default_type, default_why = None, None
        if default is not None:  # the default is a value the parameter takes too
            try:
                default_type = of_value(ast.literal_eval(default))
            except TypeParseError as exc:  # a ValueError: first
                default_why = f"is (or holds) a {exc}"  # value of unsupported type set
            except (ValueError, TypeError, SyntaxError, RecursionError):
                default_why = "is not a literal"
            else:
                obs = unify(obs, default_type)
        try:
            declared = parse(p.annotation)
        except TypeParseError:
            declared = None
        t = refine(declared, obs)
        try:
            _check_writable(t, f"parameter {p.arg}")
        except NoTypes:
            if i < passed:
                raise
            _never_passed(p.arg, default, default_type, default_why, keywords)
            raise
        types.append(t)
    try:
        declared_return = parse(fn.returns)
    except TypeParseError:
        declared_return = None
    if declared_return is None and returned.kind == "none":
        raise NoTypes("the function always returned None")
    ret = refine(declared_return, returned)
    _check_writable(ret, "the return value")
    return types, ret


def annotate(content: str, entrypoint: str, signatures: list) -> tuple[str | None, str | None]:
    """(content_with_types, None) or (None, why not)."""
    try:
        params, returns = infer(content, entrypoint, signatures)
    except NoTypes as exc:
        return None, str(exc)
    except (SyntaxError, ValueError) as exc:
        return None, f"cannot read the function: {exc}"
    fn = _function(content, entrypoint)
    lines = content.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)

    def at(lineno: int, col: int) -> int:  # ast columns are UTF-8 byte offsets
        line = lines[lineno - 1]
        return offsets[lineno - 1] + len(line.encode("utf-8")[:col].decode("utf-8"))

    edits = []  # (start, end, text), applied from the end
    for p, t in zip(fn.args.posonlyargs + fn.args.args, params):
        start = at(p.lineno, p.col_offset)
        end = at(p.end_lineno, p.end_col_offset)
        edits.append((start, end, f"{p.arg}: {t}"))
    if fn.returns is not None:
        edits.append((at(fn.returns.lineno, fn.returns.col_offset),
                      at(fn.returns.end_lineno, fn.returns.end_col_offset), str(returns)))
    else:
        close = _closing_paren(content, at(fn.lineno, fn.col_offset))
        edits.append((close, close, f" -> {returns}"))
    text = content
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    names = " ".join(str(t) for t in [*params, returns])
    used = [n for n in _TYPING if re.search(rf"\b{n}\b", names)]
    header = f"from typing import {', '.join(used)}\n\n" if used else ""
    return header + text, None


def _closing_paren(content: str, def_start: int) -> int:
    """Offset just after the `)` that closes the parameter list of the def at `def_start`."""
    depth = 0
    tokens = tokenize.generate_tokens(io.StringIO(content[def_start:]).readline)
    lines = content[def_start:].split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    for tok in tokens:
        if tok.type == tokenize.OP and tok.string == "(":
            depth += 1
        elif tok.type == tokenize.OP and tok.string == ")":
            depth -= 1
            if depth == 0:
                row, col = tok.end
                return def_start + offsets[row - 1] + col
    raise NoTypes("cannot find the end of the parameter list")


__all__ = ["annotate", "infer", "from_tree", "NoTypes", "ANY"]
