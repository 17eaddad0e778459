"""OCaml (`ml`): run as a toplevel script; tests are `assert (a = b)`."""

from __future__ import annotations

from multiplt.languages.base import (ASSERTION_ERROR, EXCEPTION, OK, SYNTAX_ERROR, Language,
                                     contains)


class OCamlLanguage(Language):
    code = "ml"
    name = "ocaml"
    file_ext = "ml"
    stop_tokens = ("\n\n", "\n(*", "\ntype", "\nlet")
    timeout = 15.0
    binaries = ("ocaml",)

    def command(self, path: str) -> list[str]:
        return ["ocaml", path]

    def classify(self, exit_code: int, stdout: str, stderr: str) -> str:
        if exit_code == 0:
            return OK
        # The toplevel compiles each phrase before running it: lexer, parser and type errors all
        # print "Error: ..." after a "File ..., line N" locator.
        if contains(stderr, r"^Error: ", r"Syntax error", r"^Lexer error"):
            return SYNTAX_ERROR
        if contains(stderr, r"Assert_failure"):
            return ASSERTION_ERROR
        return EXCEPTION
