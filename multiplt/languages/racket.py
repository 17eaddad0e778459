"""Racket (`rkt`): tests use rackunit's `check-within` with a 0.001 tolerance."""

from __future__ import annotations

import re

import shutil

from multiplt.languages.base import (ASSERTION_ERROR, EXCEPTION, OK, SYNTAX_ERROR, Language,
                                     Param, checked_nonce, contains)
from multiplt.languages.types import PyType

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def racket_string(text: str) -> str:
    """A Racket string literal (MultiPL-E wrote strings unescaped; see docs/languages.md)."""
    return '"' + "".join(_ESCAPES.get(c, c) for c in text) + '"'


_SPECIAL_FLOAT = re.compile(r"(?<![\w.])[+-](?:inf|nan)\.0\b")


def racket_float(value) -> str:
    """A flonum literal; Python's inf, -inf and nan are `+inf.0`, `-inf.0` and `+nan.0`."""
    text = repr(float(value))
    return {"inf": "+inf.0", "-inf": "-inf.0", "nan": "+nan.0"}.get(text, text)


class RacketLanguage(Language):
    code = "rkt"
    name = "racket"
    file_ext = "rkt"
    stop_tokens = ("\n(define ", "\n#|", "\n;", "\n(")
    timeout = 15.0
    binaries = ("racket",)
    test_library = "rackunit"
    packages = ("racket",)  # rackunit is in racket-common, which racket depends on
    test_marker = "(require rackunit)"
    comment = (";", "")
    empty_comment = r";+"
    comment_patterns = (r"#\|.*?\|#", r";[^\n]*")
    terms = {"array": "list", "list": "list", "tuple": "list", "dictionary": "hash", "None": "#f",
             "True": "#t", "False": "#f"}
    # Racket has no reserved words, but the prompt's `(define (NAME ...))` binds NAME in the
    # whole module, the test file's code included: a function named `define`, `let` or `require`
    # would break the harness (render_test_file) and one named `list` or `cons` the rendered
    # values, so no test could pass. These names get a trailing `_`, as other languages'
    # keywords do.
    keywords = frozenset("define let require list cons".split())

    # ---- writing problems ----------------------------------------------------------------------
    def render_value(self, value, t: PyType) -> str:
        if value is None:
            return "#f"
        if isinstance(value, bool):
            return "#t" if value else "#f"
        if t.kind == "float" or isinstance(value, float):
            return racket_float(value)
        if isinstance(value, int):
            return repr(value)
        if isinstance(value, str):
            return racket_string(value)
        if isinstance(value, (list, tuple)):
            elems = t.args if t.kind == "tuple" else [t.args[0]] * len(value)
            return "(list" + "".join(" " + self.value(v, e) for v, e in zip(value, elems)) + ")"
        if isinstance(value, dict):
            kt, vt = t.args
            pairs = [(self.value(k, kt), self.value(v, vt)) for k, v in value.items()]
            if all(_is_datum(k) and _is_datum(v) for k, v in value.items()):
                return "#hash(" + " ".join(f"({k} . {v})" for k, v in pairs) + ")"
            # A #hash literal quotes its contents; computed values need a constructor.
            return "(make-immutable-hash (list" + "".join(f" (cons {k} {v})" for k, v in pairs) + "))"
        raise TypeError(f"cannot render {value!r}")

    def render_call(self, func: str, args: list[str]) -> str:
        return "(" + " ".join([func, *args]) + ")"

    def render_prompt(self, name: str, params: list[Param], returns: PyType, description: str) -> str:
        comment = "".join(f";; {line}".rstrip() + "\n" for line in description.split("\n"))
        args = "".join(" " + self.identifier(p.name) for p in params)
        return f"#lang racket\n\n{comment}(define ({self.identifier(name)}{args})\n"

    def render_assert(self, call: str, expected: str, tolerance: float | None) -> str:
        if _SPECIAL_FLOAT.search(expected):
            # check-within compares numbers by their difference, and inf - inf is NaN, within no
            # tolerance: a value holding an infinity or NaN is compared by equal? (+nan.0 equals
            # itself there), its finite floats exactly
            return f"    (check-equal? {call} {expected})"
        tol = 0.001 if tolerance is None else min(tolerance, 0.001)
        return f"    (check-within {call} {expected} {tol!r})"

    def render_test_file(self, name: str, asserts: list[str]) -> str:
        body = "\n".join(asserts)
        return (f"(require rackunit)\n\n(define (test-humaneval) \n\n"
                f"  (let (( candidate {self.identifier(name)}))\n{body}\n))\n\n(test-humaneval)")

    def seal_tests(self, tests: str, nonce: str) -> str:
        # rackunit reports a failed check on stderr and goes on (exit 0): its test log counts
        # them, failures and errors alike, whatever became of stderr; the nonce only when none
        # failed and at least one check ran
        return (f"{tests}\n\n(require (only-in rackunit/log [test-log multiplt-test-log]))\n"
                "(let ([multiplt-log (multiplt-test-log #:display? #f #:exit? #f)])\n"
                "  (when (and (zero? (car multiplt-log)) (positive? (cdr multiplt-log)))\n"
                f"    (write-string \"{checked_nonce(nonce)}\\n\" (current-output-port))\n"
                "    (flush-output (current-output-port))))\n")

    def return_body(self, expr: str) -> str:
        return f"  {expr})\n"

    def command(self, path: str) -> list[str]:
        return ["racket", path]

    def fork_server(self, folder: str, library: str) -> list[str] | None:
        """`racket` and `rackunit` loaded once (about 0.4 s of a fresh `racket` per program);
        Racket CS runs on one OS thread here, so a fork is a whole runtime. The server and its
        memory settings: racket_server.py."""
        if not shutil.which("racket"):
            return None
        from multiplt.languages import racket_server

        return racket_server.argv(folder, library)

    def classify(self, exit_code: int, stdout: str, stderr: str) -> str:
        if exit_code == 0 and not stderr.strip():
            return OK
        # Reader and expander errors stop the module before any test runs.
        if contains(stderr, r"read-syntax", r"\bread: ", r"bad syntax", r"unbound identifier",
                    r"expected a `\)`", r"unexpected `\)`", r"duplicate argument",
                    r"module: identifier already", r"define-values: assignment disallowed"):
            return SYNTAX_ERROR
        # rackunit reports each check: FAILURE for a failed check, ERROR when the check raised.
        # Failures exit 0 and only write to stderr.
        if contains(stderr, r"^ERROR\b"):
            return EXCEPTION
        if contains(stderr, r"^FAILURE\b"):
            return ASSERTION_ERROR
        return EXCEPTION


def _is_datum(value) -> bool:
    """Values that read the same inside a quoted #hash literal."""
    return value is None or isinstance(value, (bool, int, float, str))

