"""Python (`py`): the source language of MultiPL-T, and a benchmark language of its own."""

from __future__ import annotations

from multiplt.languages.base import (ASSERTION_ERROR, EXCEPTION, OK, SYNTAX_ERROR, Language,
                                     contains)


class PythonLanguage(Language):
    code = "py"
    name = "python"
    file_ext = "py"
    stop_tokens = ("\ndef", "\n#", "\nif", "\nclass")
    timeout = 15.0
    binaries = ("python3",)

    def command(self, path: str) -> list[str]:
        return ["python3", "-I", "-B", path]

    def classify(self, exit_code: int, stdout: str, stderr: str) -> str:
        if exit_code == 0:
            return OK
        if contains(stderr, r"^(SyntaxError|IndentationError|TabError)\b"):
            return SYNTAX_ERROR
        if contains(stderr, r"^AssertionError\b"):
            return ASSERTION_ERROR
        return EXCEPTION
