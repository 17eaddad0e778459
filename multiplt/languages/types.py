"""Python types of benchmark values, as the translators see them.

A `PyType` is a small tree: scalars (`int float bool str none any`), containers (`list`, fixed
`tuple`, variable-length `vtuple`, `dict`), `optional` and `union`, plus `unknown` for what no value
has shown yet (the element type of an empty list). Types come from a Python annotation (`parse`),
from values (`of_value`), or from both (`unify`, `refine`). Languages render values by type, so
OCaml gets `3.0` for an int in a float slot and Julia gets `Vector{Int64}([])` for an empty list.
"""

from __future__ import annotations

import ast
import dataclasses

SCALARS = ("int", "float", "bool", "str", "none", "any", "unknown")


@dataclasses.dataclass(frozen=True)
class PyType:
    kind: str
    args: tuple["PyType", ...] = ()

    def __str__(self) -> str:
        names = {"int": "int", "float": "float", "bool": "bool", "str": "str", "none": "None",
                 "any": "Any", "unknown": "Any"}
        if self.kind in names:
            return names[self.kind]
        inner = ", ".join(str(a) for a in self.args)
        return {"list": f"List[{inner}]", "tuple": f"Tuple[{inner}]" if self.args else "Tuple[()]",
                "vtuple": f"Tuple[{inner}, ...]", "dict": f"Dict[{inner}]",
                "optional": f"Optional[{inner}]", "union": f"Union[{inner}]"}[self.kind]

    @property
    def complete(self) -> bool:
        """No `unknown` anywhere inside."""
        return self.kind != "unknown" and all(a.complete for a in self.args)



INT, FLOAT, BOOL, STR, NONE, ANY, UNKNOWN = (PyType(k) for k in SCALARS)


def List(t: PyType) -> PyType:  # noqa: N802 (reads like the annotation it mirrors)
    return PyType("list", (t,))


def Tuple(*ts: PyType) -> PyType:  # noqa: N802
    return PyType("tuple", tuple(ts))


def Dict(k: PyType, v: PyType) -> PyType:  # noqa: N802
    return PyType("dict", (k, v))


def Optional(t: PyType) -> PyType:  # noqa: N802
    return t if t.kind in ("optional", "none", "any") else PyType("optional", (t,))


class TypeParseError(ValueError):
    pass


_NAMES = {"int": INT, "float": FLOAT, "bool": BOOL, "str": STR, "None": NONE, "Any": ANY,
          "list": List(UNKNOWN), "List": List(UNKNOWN), "dict": Dict(UNKNOWN, UNKNOWN),
          "Dict": Dict(UNKNOWN, UNKNOWN), "tuple": PyType("vtuple", (UNKNOWN,)),
          "Tuple": PyType("vtuple", (UNKNOWN,)), "object": ANY}


def parse(annotation: str | ast.expr | None) -> PyType | None:
    """The type an annotation names (`List[int]`, `Optional[str]`, `int | None`); None if absent."""
    if annotation is None:
        return None
    node = ast.parse(annotation, mode="eval").body if isinstance(annotation, str) else annotation
    return _parse_node(node)


def _parse_node(node: ast.expr) -> PyType:
    if isinstance(node, ast.Constant) and node.value is None:
        return NONE
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _parse_node(ast.parse(node.value, mode="eval").body)
    if isinstance(node, ast.Attribute):  # typing.List
        return _parse_node(ast.Name(node.attr))
    if isinstance(node, ast.Name):
        if node.id not in _NAMES:
            raise TypeParseError(f"unsupported type name {node.id!r}")
        return _NAMES[node.id]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return union(_parse_node(node.left), _parse_node(node.right))
    if isinstance(node, ast.Subscript):
        head = node.value.attr if isinstance(node.value, ast.Attribute) else getattr(node.value, "id", "")
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if head in ("List", "list") and len(items) == 1:
            return List(_parse_node(items[0]))
        if head in ("Dict", "dict") and len(items) == 2:
            return Dict(_parse_node(items[0]), _parse_node(items[1]))
        if head in ("Tuple", "tuple"):
            if len(items) == 2 and isinstance(items[1], ast.Constant) and items[1].value is Ellipsis:
                return PyType("vtuple", (_parse_node(items[0]),))
            return Tuple(*(_parse_node(i) for i in items))
        if head == "Optional" and len(items) == 1:
            return Optional(_parse_node(items[0]))
        if head == "Union":
            return union(*(_parse_node(i) for i in items))
    raise TypeParseError(f"unsupported annotation {ast.unparse(node)!r}")


def union(*types: PyType) -> PyType:
    """The union of `types`, with None folded into Optional and nested unions flattened."""
    members: list[PyType] = []
    has_none = False
    for t in types:
        for m in (t.args if t.kind == "union" else (t,)):
            if m.kind == "optional":
                has_none, m = True, m.args[0]
            if m.kind == "none":
                has_none = True
            elif m not in members:
                members.append(m)
    if not members:
        return NONE
    core = members[0] if len(members) == 1 else PyType("union", tuple(members))
    return Optional(core) if has_none else core


def of_value(value) -> PyType:
    """The most precise type of one Python value."""
    if value is None:
        return NONE
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT
    if isinstance(value, float):
        return FLOAT
    if isinstance(value, str):
        return STR
    if isinstance(value, list):
        return List(unify_all(of_value(v) for v in value))
    if isinstance(value, tuple):
        return Tuple(*(of_value(v) for v in value))
    if isinstance(value, dict):
        return Dict(unify_all(of_value(k) for k in value), unify_all(of_value(v) for v in value.values()))
    raise TypeParseError(f"value of unsupported type {type(value).__name__}")


def unify_all(types) -> PyType:
    result = UNKNOWN
    for t in types:
        result = unify(result, t)
    return result


def unify(a: PyType, b: PyType) -> PyType:
    """The least type holding values of both `a` and `b` (int and float meet at float)."""
    if a == b or b.kind == "unknown":
        return a
    if a.kind == "unknown":
        return b
    if "any" in (a.kind, b.kind):
        return ANY
    if {a.kind, b.kind} == {"int", "float"}:
        return FLOAT
    if a.kind == "none" or b.kind == "none":
        return Optional(b if a.kind == "none" else a)
    if a.kind == "optional" or b.kind == "optional":
        inner_a = a.args[0] if a.kind == "optional" else a
        inner_b = b.args[0] if b.kind == "optional" else b
        return Optional(unify(inner_a, inner_b))
    if a.kind == b.kind == "list":
        return List(unify(a.args[0], b.args[0]))
    if a.kind == b.kind == "dict":
        return Dict(unify(a.args[0], b.args[0]), unify(a.args[1], b.args[1]))
    if a.kind == b.kind == "tuple" and len(a.args) == len(b.args) and a.args:
        return Tuple(*(unify(x, y) for x, y in zip(a.args, b.args)))
    if a.kind in ("tuple", "vtuple") and b.kind in ("tuple", "vtuple"):
        return PyType("vtuple", (unify_all(a.args + b.args),))
    if a.kind == "union" or b.kind == "union":
        members = list(a.args if a.kind == "union" else (a,))
        for m in (b.args if b.kind == "union" else (b,)):
            for i, have in enumerate(members):
                merged = unify(have, m)
                if merged.kind != "union":
                    members[i] = merged
                    break
            else:
                members.append(m)
        return union(*members)
    return union(a, b)


def refine(declared: PyType | None, observed: PyType) -> PyType:
    """The declared annotation with its unknown parts (a bare `list`) filled from observed values."""
    if declared is None:
        return observed
    if declared.kind == "unknown":
        return observed
    if declared.kind == observed.kind and len(declared.args) == len(observed.args):
        return PyType(declared.kind, tuple(refine(d, o) for d, o in zip(declared.args, observed.args)))
    if declared.kind == "vtuple" and observed.kind == "tuple" and declared.args[0].kind == "unknown":
        return observed if observed.args else declared
    if declared.kind == "optional":
        inner = observed.args[0] if observed.kind == "optional" else observed
        return Optional(refine(declared.args[0], inner)) if inner.kind != "none" else declared
    return declared


def conforms(value, t: PyType) -> bool:
    """Whether `value` can be written as a literal of type `t` (an int fits a float slot)."""
    k = t.kind
    if k in ("any", "unknown"):
        return True
    if k == "none":
        return value is None
    if k == "optional":
        return value is None or conforms(value, t.args[0])
    if k == "union":
        return any(conforms(value, m) for m in t.args)
    if k == "bool":
        return isinstance(value, bool)
    if k == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if k == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if k == "str":
        return isinstance(value, str)
    if k == "list":
        return isinstance(value, list) and all(conforms(v, t.args[0]) for v in value)
    if k == "tuple":
        return (isinstance(value, tuple) and len(value) == len(t.args)
                and all(conforms(v, m) for v, m in zip(value, t.args)))
    if k == "vtuple":
        return isinstance(value, tuple) and all(conforms(v, t.args[0]) for v in value)
    if k == "dict":
        return isinstance(value, dict) and all(
            conforms(a, t.args[0]) and conforms(b, t.args[1]) for a, b in value.items())
    return False


def member_for(value, t: PyType) -> PyType:
    """For a union, the member `value` belongs to (first match); otherwise `t` itself."""
    if t.kind == "union":
        for m in t.args:
            if conforms(value, m):
                return m
    if t.kind in ("any", "unknown"):
        return _known(of_value(value))
    return t


def _known(t: PyType) -> PyType:
    """`t` with unknown parts (the element type of an empty list) read as Any."""
    if t.kind == "unknown":
        return ANY
    return PyType(t.kind, tuple(_known(a) for a in t.args)) if t.args else t
