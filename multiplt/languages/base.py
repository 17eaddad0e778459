"""The one interface every target language implements.

A language knows two things: how to *write* a benchmark problem in it (prompt, values, tests,
stop tokens; used by the benchmark builder and later by the translation step) and how to *run*
a program in it (command, default timeout, how to read a run's outcome into a status; used by the
executor). Each language is one small module; ``multiplt.languages.registry`` lists them.
"""

from __future__ import annotations

import abc
import dataclasses
import re
from typing import ClassVar

from multiplt.languages.types import PyType, conforms, member_for, of_value

# The statuses every language maps its outcomes to. A completion passes only with OK and exit 0.
OK = "OK"
SYNTAX_ERROR = "SyntaxError"
ASSERTION_ERROR = "AssertionError"
EXCEPTION = "Exception"
TIMEOUT = "Timeout"
STATUSES = (OK, SYNTAX_ERROR, ASSERTION_ERROR, EXCEPTION, TIMEOUT)

#: where the sandbox mounts, read-only, the folder a language's `build_libraries` filled
LIBRARY_MOUNT = "/tmp/.multiplt-lib"


class Language(abc.ABC):
    #: short code used in file names, tags and MultiPL-E's `language` field (`rkt`): lower-case
    #: letters a-z only, which the registry checks
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
    #: the Debian packages the language needs: its runtime (giving `binaries`), its test library
    #: and whatever else its module uses (e.g. headers for a fork server). scripts/setup.sh's
    #: APT_PACKAGES and docker/sandbox.Dockerfile's apt-get install must list each (or one that
    #: depends on it; an Essential package needs no listing): tests/unit/test_setup_list.py and
    #: tests/unit/test_docker.py check it. () for a runtime Debian does not package (Julia,
    #: which the sandbox image installs from its tarball)
    packages: ClassVar[tuple[str, ...]]
    #: the test library the rendered tests load, where it is no part of the language itself
    #: (its name, for the preflight's error; scripts/setup.sh installs it); None: built in
    test_library: ClassVar[str | None] = None
    #: whether MultiPL-T translates into this language and fine-tunes on it: all but Python,
    #: the source language, whose benchmark problems are used as they are (not translated)
    target: ClassVar[bool] = True

    # ---- writing problems (translation part) -------------------------------------------------
    #: MultiPL-E's terms.csv row: Python word -> this language's word, used by "reworded" prompts
    terms: ClassVar[dict[str, str]]
    #: whether values must fit the declared types (jl, ml): a value that does not is Unsupported;
    #: untyped languages render such a value by its own type instead
    strict_types: ClassVar[bool] = False
    #: whether an Optional value is wrapped (OCaml's `Some x`); others write the bare value
    option_constructor: ClassVar[bool] = False
    #: words that cannot name a parameter or function; `identifier` appends `_` to them
    keywords: ClassVar[frozenset[str]] = frozenset()

    # ---- cleaning translations (multiplt/translation/clean.py) ------------------------------
    #: the text where the test suite starts in a program (prompt + completion + tests): the
    #: start of `render_test_file`'s output; a training document is cut there
    test_marker: ClassVar[str]
    #: how a comment opens and closes (close "" where it ends with the line): `("--", "")`,
    #: `("(*", "*)")`; written after a program to tell copies apart (bench/execute_throughput.py)
    comment: ClassVar[tuple[str, str]]
    #: a regular expression for a line holding only a comment marker (`;+`), which a training
    #: document drops
    empty_comment: ClassVar[str]
    #: regular expressions (matched with re.DOTALL) for the comments, block comments first, that
    #: near-duplicate detection removes before comparing two programs
    comment_patterns: ClassVar[tuple[str, ...]]

    def identifier(self, name: str) -> str:
        """A legal name for a Python parameter or function name in this language."""
        return name + "_" if name in self.keywords else name

    def check_signature(self, params: list["Param"], returns: PyType) -> None:
        """Raise Unsupported when this language cannot express the signature's types."""
        for t in [p.type for p in params] + [returns]:
            self.render_type(t)

    def render_type(self, t: PyType) -> str:
        """The type's spelling in this language ("" for untyped languages)."""
        return ""

    def value(self, value, t: PyType) -> str:
        """Render `value` (a Python value) as a literal of type `t` in this language."""
        if not conforms(value, t):
            if self.strict_types:
                raise Unsupported(f"value {value!r} does not fit the declared type {t}")
            t = of_value(value)
        if t.kind == "optional" and not self.option_constructor:
            t = t.args[0] if value is not None else t
        return self.render_value(value, member_for(value, t))

    @abc.abstractmethod
    def render_value(self, value, t: PyType) -> str:
        """Render a value already known to conform to `t` (never a union or Any)."""

    def render_call(self, func: str, args: list[str]) -> str:
        return f"{func}({', '.join(args)})"

    @abc.abstractmethod
    def render_prompt(self, name: str, params: list["Param"], returns: PyType, description: str) -> str:
        """The prompt: `description` as a comment/docstring, then the open function header."""

    @abc.abstractmethod
    def render_assert(self, call: str, expected: str, tolerance: float | None) -> str:
        """One test line: `call` must equal `expected` (within `tolerance` when given)."""

    @abc.abstractmethod
    def render_test_file(self, name: str, asserts: list[str]) -> str:
        """The test harness around the assert lines; `name` is the function under test."""

    def seal_tests(self, tests: str, nonce: str) -> str:
        """The translate stage's test program (multiplt/translation/problems.py): `tests`, this
        language's `render_test_file` output, with code after the tests that prints `nonce` (hex
        digits, a fresh one per problem that the model never sees) alone on a line on stdout only
        once every test has run and none failed, so a translation that exits before or instead of
        running its tests (or hides their failures) never prints it. `test_marker` still starts
        the result. Only the translate stage uses it: evaluation runs `render_test_file`'s output
        as it is. Every translation target implements it."""
        raise NotImplementedError(f"{self.name} is not a translation target")

    def tampers_with_tests(self, prompt: str, completion: str) -> str | None:
        """The translate stage's static check of a translation (docs/translation.md): the
        `completion` a model wrote after `prompt` runs in one program before the sealed tests, so
        it could redefine what they call. `seal_tests` makes the tests immune to that where the
        language allows; this refuses what remains: the construct found in `completion` (a short
        text, for the excluded row's reason), or None. The default finds nothing (sealed tests
        that nothing before them can reach)."""
        return None

    @abc.abstractmethod
    def return_body(self, expr: str) -> str:
        """A completion that returns `expr` and closes the function the prompt opened."""

    def render_doctest(self, call: str, result: str | None) -> list[str]:
        """Docstring lines for a doctest `>>> call` and its result."""
        return [f">>> {call}"] + ([result] if result is not None else [])

    def render_case(self, name: str, params: list["Param"], returns: PyType, case: "TestCase") -> str:
        """One translated assert; raises Unsupported when a value cannot be written."""
        if len(case.args) != len(params):
            raise Unsupported(f"call has {len(case.args)} arguments, the function takes {len(params)}")
        args = [self.value(v, p.type) for v, p in zip(case.args, params)]
        if case.templates:
            template = dict(case.templates).get(self.code)
            if template is None:
                raise Unsupported(f"the property assert has no {self.code} template")
            text = template.replace("{call}", self.render_call(name, args))
            for i, arg in enumerate(args):
                text = text.replace(f"{{arg{i}}}", arg)
            return text
        return self.render_assert(self.render_call(name, args), self.value(case.expected, returns),
                                  case.tolerance)

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

    def build_libraries(self, folder: str) -> bool:
        """Precompile the test libraries every program of this language loads into `folder` (an
        empty folder), once per batch instead of once per program; the sandbox mounts it at
        LIBRARY_MOUNT. Return False when there is nothing to build here (the default): programs
        must then run without it. May raise OSError or SubprocessError (logged, then False)."""
        return False

    def fork_server(self, folder: str, library: str) -> list[str] | None:
        """A pre-loaded runtime that forks each program (multiplt/execution/forkserver.py): write
        what it needs into `folder` (an empty folder the sandbox can read) and return the argv
        that starts it, with the programs' environment (`env()`). It must load the runtime and
        the test library, then call `int multiplt_serve(int)` of the shared `library` with 3 (its
        control socket) through its FFI: that returns -1 when the requests end (exit then), and 0
        in each program, where it runs the file `const char *multiplt_program(void)` names
        exactly as `command()` would (same output, messages and exit status) and exits. None (the
        default): a fresh interpreter per program."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.code}>"


class Unsupported(Exception):
    """This language cannot express a type or value; the message is the reason it was dropped."""


@dataclasses.dataclass(frozen=True)
class Param:
    name: str
    type: PyType


@dataclasses.dataclass(frozen=True)
class TestCase:
    """A normalized assert: `candidate(*args)` equals `expected` (within `tolerance` if set)."""

    __test__ = False  # not a pytest class

    args: tuple
    expected: object
    tolerance: float | None = None
    #: for a property assert (an override): (language code, template) pairs; the template's
    #: `{call}` and `{arg0}`, `{arg1}`... are replaced by the rendered call and arguments
    templates: tuple[tuple[str, str], ...] = ()


def decimal_escaped(text: str, escapes: dict[str, str]) -> str:
    """A double-quoted string literal of `text` for languages whose strings take 3-digit decimal
    escapes (Lua, OCaml): `escapes` for the characters with their own escape, `\\ddd` for every
    other control character (a shorter escape such as Lua's `\\0` would swallow a digit after it)."""
    out = []
    for c in text:
        if c in escapes:
            out.append(escapes[c])
        elif ord(c) < 32 or ord(c) == 127:
            out.append(f"\\{ord(c):03d}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


_NONCE = re.compile(r"[0-9a-f]{16,}")


def checked_nonce(nonce: str) -> str:
    """`nonce` when it is hex digits (at least 16), which every language writes in a string
    literal as it is; ValueError otherwise."""
    if not isinstance(nonce, str) or not _NONCE.fullmatch(nonce):
        raise ValueError(f"a test nonce must be at least 16 lower-case hex digits, got {nonce!r}")
    return nonce


def first_match(text: str, patterns) -> str | None:
    """The text of the first match of any compiled regex in `patterns` (in that order), on one
    line and at most 60 characters, or None."""
    for pattern in patterns:
        found = pattern.search(text)
        if found:
            return " ".join(found.group(0).split())[:60]
    return None


def contains(text: str, *patterns: str) -> bool:
    """True when any regex in `patterns` matches `text` (multiline)."""
    return any(re.search(p, text, re.MULTILINE) for p in patterns)
