"""Racket (`rkt`): tests use rackunit's `check-within` with a 0.001 tolerance."""

from __future__ import annotations

from multiplt.languages.base import (ASSERTION_ERROR, EXCEPTION, OK, SYNTAX_ERROR, Language,
                                     contains)


class RacketLanguage(Language):
    code = "rkt"
    name = "racket"
    file_ext = "rkt"
    stop_tokens = ("\n(define ", "\n#|", "\n;", "\n(")
    timeout = 15.0
    binaries = ("racket",)

    def command(self, path: str) -> list[str]:
        return ["racket", path]

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
