"""R (`r`): tests are `stopifnot(isTRUE(all.equal(a, b)))`."""

from __future__ import annotations

from multiplt.languages.base import (ASSERTION_ERROR, EXCEPTION, OK, SYNTAX_ERROR, Language,
                                     contains)


class RLanguage(Language):
    code = "r"
    name = "r"
    file_ext = "r"
    stop_tokens = ("\n#", "\n```")
    timeout = 5.0
    binaries = ("Rscript",)

    def command(self, path: str) -> list[str]:
        return ["Rscript", "--vanilla", path]

    def classify(self, exit_code: int, stdout: str, stderr: str) -> str:
        if exit_code == 0:
            return OK
        if contains(stderr, r"^Error: unexpected", r"^Error in parse\(", r"unexpected end of input",
                    r"unexpected (symbol|string constant|numeric constant|'[^']*'|input)"):
            return SYNTAX_ERROR
        if contains(stderr, r"is not TRUE", r"are not all TRUE"):
            return ASSERTION_ERROR
        return EXCEPTION
