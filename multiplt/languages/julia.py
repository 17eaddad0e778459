"""Julia (`jl`): tests are `@test` lines in a `@testset`; exact equality."""

from __future__ import annotations

from multiplt.languages.base import (ASSERTION_ERROR, EXCEPTION, OK, SYNTAX_ERROR, Language,
                                     contains)


class JuliaLanguage(Language):
    code = "jl"
    name = "julia"
    file_ext = "jl"
    stop_tokens = ("\nfunction", "\nmacro", "\n\n")
    timeout = 5.0
    binaries = ("julia",)

    def command(self, path: str) -> list[str]:
        return ["julia", "--startup-file=no", "--history-file=no", path]

    def classify(self, exit_code: int, stdout: str, stderr: str) -> str:
        if exit_code == 0:
            return OK
        text = stdout + "\n" + stderr
        if contains(text, r"ParseError", r"\bsyntax: ", r"LoadError: syntax"):
            return SYNTAX_ERROR
        if contains(text, r"Error During Test"):
            return EXCEPTION
        if contains(text, r"Test Failed"):
            return ASSERTION_ERROR
        return EXCEPTION
