"""Lua (`lua`): tests use luaunit's `assertEquals`; exit code = number of failures."""

from __future__ import annotations

import re

from multiplt.languages.base import (ASSERTION_ERROR, EXCEPTION, OK, SYNTAX_ERROR, Language,
                                     contains)

_SUMMARY = re.compile(r"Ran \d+ tests? in [\d.]+ seconds?, (\d+) success(?:es)?"
                      r"(?:, (\d+) failures?)?(?:, (\d+) errors?)?")


class LuaLanguage(Language):
    code = "lua"
    name = "lua"
    file_ext = "lua"
    stop_tokens = ("\nlocal", "\nfunction", "\n--", "\n\n")
    timeout = 15.0
    binaries = ("lua5.4",)

    def command(self, path: str) -> list[str]:
        return ["lua5.4", path]

    def classify(self, exit_code: int, stdout: str, stderr: str) -> str:
        summary = _SUMMARY.search(stdout)
        if summary:
            failures, errors = int(summary.group(2) or 0), int(summary.group(3) or 0)
            if errors:
                return EXCEPTION
            if failures:
                return ASSERTION_ERROR
            return OK if exit_code == 0 else EXCEPTION
        if exit_code == 0:
            return OK
        # Compile errors abort before luaunit runs: "lua5.4: file:3: <msg> near <token>".
        if contains(stderr, r"^lua[\d.]*: [^\n]*:\d+: [^\n]*(near|expected|syntax error|"
                            r"unfinished|malformed|invalid escape)"):
            return SYNTAX_ERROR
        return EXCEPTION
