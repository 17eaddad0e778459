"""Wrong-but-well-typed values and bodies: the "zero broken problems" check and wrong variants.

`wrong_value(t, avoid)` is a Python value of type `t` that differs from `avoid` (the expected
value of a problem's first test), so a program whose body returns it must load, type-check and
then fail at a test. `placeholder_body(lang, t, avoid)` renders that as a completion.
"""

from __future__ import annotations

from multiplt.languages.base import Language
from multiplt.languages.types import PyType, conforms


def _candidates(t: PyType) -> list:
    k = t.kind
    if k == "int":
        return [987654, -13]
    if k == "float":
        return [9876.5, -0.25]
    if k == "bool":
        return [False, True]
    if k == "str":
        return ["placeholder", "x"]
    if k == "none":
        return [None]
    if k in ("any", "unknown"):
        return [987654]
    if k == "list":
        return [[v] for v in _candidates(t.args[0])] + [[]]
    if k == "tuple":
        return [tuple(_candidates(a)[i % len(_candidates(a))] for a in t.args) for i in range(2)]
    if k == "vtuple":
        return [(v,) for v in _candidates(t.args[0])] + [()]
    if k == "dict":
        return [{_candidates(t.args[0])[0]: v} for v in _candidates(t.args[1])] + [{}]
    if k == "optional":
        return _candidates(t.args[0]) + [None]
    if k == "union":
        return [v for m in t.args for v in _candidates(m)]
    raise ValueError(f"no placeholder for {t}")


def wrong_value(t: PyType, avoid=object()):
    for value in _candidates(t):
        if conforms(value, t) and not _same(value, avoid):
            return value
    raise ValueError(f"no value of type {t} differs from {avoid!r}")


def _same(a, b) -> bool:
    try:
        return a == b and type(a) is type(b)
    except Exception:  # noqa: BLE001
        return False


def placeholder_body(lang: Language, t: PyType, avoid=object()) -> str:
    return lang.return_body(lang.value(wrong_value(t, avoid), t))
