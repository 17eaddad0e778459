"""Python (`py`): the source language of MultiPL-T, and a benchmark language of its own."""

from __future__ import annotations

import copy
import keyword
import re

from multiplt.languages.base import (ASSERTION_ERROR, EXCEPTION, OK, SYNTAX_ERROR, Language,
                                     Param, contains)
from multiplt.languages.types import PyType

_TYPING = ("List", "Tuple", "Dict", "Optional", "Union", "Any")

#: The string hash seed every Python program runs with (PYTHONHASHSEED): the order of a set or
#: dict of strings (bytes, datetimes) follows it, so with a random seed per interpreter, as
#: Python's default, a program such as `list(set(text))` gives another answer from one run to
#: the next, and so would its verdict. 0 turns hash randomization off (sys.flags.hash_randomization).
HASH_SEED = 0


class PythonLanguage(Language):
    code = "py"
    name = "python"
    file_ext = "py"
    stop_tokens = ("\ndef", "\n#", "\nif", "\nclass")
    timeout = 15.0
    binaries = ("python3",)
    target = False  # MultiPL-T's source language
    packages = ("python3",)
    test_marker = "\ndef check(candidate):"  # HumanEval's own tests and render_test_file's
    comment = ("#", "")
    empty_comment = r"#+"
    comment_patterns = (r'""".*?"""', r"'''.*?'''", r"#[^\n]*")
    terms = {"array": "array", "list": "list", "tuple": "tuple", "dictionary": "dictionary",
             "None": "None", "True": "True", "False": "False"}
    keywords = frozenset(keyword.kwlist)

    # ---- writing problems ----------------------------------------------------------------------
    def render_value(self, value, t: PyType) -> str:
        if t.kind == "float" and not isinstance(value, bool):
            text = repr(float(value))  # inf, -inf and nan are no Python literals
            return f"float({text!r})" if text in ("inf", "-inf", "nan") else text
        if isinstance(value, (list, tuple)) and t.kind in ("list", "tuple", "vtuple"):
            elems = t.args if t.kind == "tuple" else [t.args[0]] * len(value)
            items = [self.value(v, e) for v, e in zip(value, elems)]
            if isinstance(value, list):
                return "[" + ", ".join(items) + "]"
            return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
        if isinstance(value, dict) and t.kind == "dict":
            kt, vt = t.args
            return "{" + ", ".join(f"{self.value(k, kt)}: {self.value(v, vt)}"
                                   for k, v in value.items()) + "}"
        if t.kind == "optional" and value is not None:
            return self.value(value, t.args[0])
        return repr(value)

    def render_prompt(self, name: str, params: list[Param], returns: PyType, description: str) -> str:
        annotations = " ".join(str(p.type) for p in params) + " " + str(returns)
        used = [n for n in _TYPING if re.search(rf"\b{n}\b", annotations)]
        header = f"from typing import {', '.join(used)}\n\n" if used else ""
        args = ", ".join(f"{self.identifier(p.name)}: {p.type}" for p in params)
        doc = "\n".join(("    " + line).rstrip() for line in description.split("\n"))
        doc = doc.replace('"""', '\\"\\"\\"')
        return (f'{header}def {self.identifier(name)}({args}) -> {returns}:\n'
                f'    """{doc.lstrip()}\n    """\n')

    def render_assert(self, call: str, expected: str, tolerance: float | None) -> str:
        if tolerance is not None:
            return f"    assert abs({call} - {expected}) < {tolerance!r}"
        return f"    assert {call} == {expected}"

    def render_test_file(self, name: str, asserts: list[str]) -> str:
        body = "\n".join(asserts) or "    pass"
        return (f"def check(candidate):\n{body}\n\ndef test_check():\n"
                f"    check({self.identifier(name)})\n\ntest_check()\n")

    def return_body(self, expr: str) -> str:
        return f"    return {expr}\n"

    #: the PYTHONHASHSEED `env` gives (HASH_SEED; `with_hash_seed` makes one of another seed)
    hash_seed = HASH_SEED

    def command(self, path: str) -> list[str]:
        # `-I` would be `-E -s -P`, but -E also ignores PYTHONHASHSEED: `-s` without -E. The
        # program's environment is only what the sandbox sets (its own and `env()`), so no other
        # PYTHON* variable of the host's reaches it. No `-P` (Python 3.11+): a runtime python3 of
        # 3.10 must run programs too, and the program's folder on sys.path holds only the
        # program (as MultiPL-E runs it: `python3 FILE`).
        return ["python3", "-s", "-B", path]

    def env(self) -> dict[str, str]:
        return {"PYTHONHASHSEED": str(self.hash_seed)}

    def with_hash_seed(self, seed: int) -> "PythonLanguage":
        """This language, its programs run under PYTHONHASHSEED `seed` (testgen runs asserts
        under a second seed to find those whose verdict depends on it)."""
        if not 0 <= seed <= 4294967295:
            raise ValueError(f"PYTHONHASHSEED must be in [0, 4294967295], got {seed}")
        other = copy.copy(self)
        other.hash_seed = seed
        return other

    def classify(self, exit_code: int, stdout: str, stderr: str) -> str:
        if exit_code == 0:
            return OK
        if contains(stderr, r"^(SyntaxError|IndentationError|TabError)\b"):
            return SYNTAX_ERROR
        if contains(stderr, r"^AssertionError\b"):
            return ASSERTION_ERROR
        return EXCEPTION
