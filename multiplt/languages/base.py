"""The one interface every target language implements.

A language knows two things: how to *write* a benchmark problem in it (prompt, values, tests,
stop tokens; used by the benchmark builder and later by the translation step) and how to *run*
a program in it (command, default timeout, how to read a run's outcome into a status; used by the
executor). Each language is one small module; ``multiplt.languages.registry`` lists them.
"""

from __future__ import annotations

import abc
import re
from typing import ClassVar

# The statuses every language maps its outcomes to. A completion passes only with OK and exit 0.
OK = "OK"
SYNTAX_ERROR = "SyntaxError"
ASSERTION_ERROR = "AssertionError"
EXCEPTION = "Exception"
TIMEOUT = "Timeout"
STATUSES = (OK, SYNTAX_ERROR, ASSERTION_ERROR, EXCEPTION, TIMEOUT)


class Language(abc.ABC):
    #: short code used in file names, tags and MultiPL-E's `language` field: py rkt jl r ml lua
    code: ClassVar[str]
    #: the language's name, also the split name of the published MultiPL-T dataset
    name: ClassVar[str]
    #: file extension without the dot (MultiPL-E's `file_ext()`)
    file_ext: ClassVar[str]
    #: strings that end a completion (the body) in this language
    stop_tokens: ClassVar[tuple[str, ...]]
    #: default wall-clock limit in seconds for one program, as in MultiPL-E's evaluators
    timeout: ClassVar[float]
    #: external programs the run command needs; scripts/setup.sh must install each
    binaries: ClassVar[tuple[str, ...]]

    @property
    def split(self) -> str:
        """Split name of the published dataset for this language (e.g. `racket`)."""
        return self.name

    # ---- running programs -------------------------------------------------------------------
    @abc.abstractmethod
    def command(self, path: str) -> list[str]:
        """The argv that runs the program stored at `path`."""

    @abc.abstractmethod
    def classify(self, exit_code: int, stdout: str, stderr: str) -> str:
        """Status of a finished (not timed-out) run: one of STATUSES other than TIMEOUT."""

    def env(self) -> dict[str, str]:
        """Extra environment variables the runtime needs (e.g. a library path)."""
        return {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.code}>"


def contains(text: str, *patterns: str) -> bool:
    """True when any regex in `patterns` matches `text` (multiline)."""
    return any(re.search(p, text, re.MULTILINE) for p in patterns)
