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
        # The tests are a function of a submodule written in `'#%kernel`, Racket's primitives: a
        # submodule declared with `module` sees none of the enclosing module's definitions, so
        # what the translation defined (check-within, list, zero?, ...) is not what the tests
        # call, and rackunit's state (its check-around parameter, its test log) is not used. The
        # module calls that function with the function under test; it prints the nonce after the
        # last check. A translation that rebinds the names of that call can only keep it from
        # running (then no nonce). The two checks are rackunit's comparisons made of primitives
        # (check-within: numbers within epsilon, anything else `equal?/recur` with that rule;
        # check-equal?: `equal?`); a failed one prints FAILURE on stderr and raises, which ends
        # the program (exit 1) before the nonce, whatever became of stderr. The kernel language
        # loads nothing, and the submodule needs nothing of the enclosing module: it costs a
        # program forked from the pre-loaded runtime (racket_server) little to expand.
        found = _SEALABLE.fullmatch(tests)
        if not found:
            raise ValueError("not a Racket test file of render_test_file")
        return (f"{self.test_marker}\n\n{_SUBMODULE}(define-values ({_RUN}) (lambda (multiplt-candidate)\n"
                f"  (let-values ([(candidate) multiplt-candidate])\n{found['body']}\n)\n"
                f"(write-string \"{checked_nonce(nonce)}\\n\" (current-output-port))\n"
                f"(flush-output (current-output-port)))))\n\n(require '{_TESTS})\n"
                f"({_RUN} {found['name']})\n")

    def tampers_with_tests(self, prompt: str, completion: str) -> str | None:
        for token, head, required in _tokens(completion):
            # as the reader may spell an identifier: |module*|, modul\e*, MODULE* under #ci
            name = token.replace("|", "").replace("\\", "").lower()
            if name in _TAMPERING or name in _MODULE and (head or required):
                return token
        return None

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


_TESTS, _RUN = "multiplt-tests", "multiplt-run-tests"  # the sealed tests' submodule, its function
_SEALABLE = re.compile(r"\(require rackunit\)\n\n\(define \(test-humaneval\) \n\n"
                       r"  \(let \(\( candidate (?P<name>[^\s()\[\]]+)\)\)\n(?P<body>.*)\n\)\)\n\n"
                       r"\(test-humaneval\)", re.DOTALL)
# The sealed tests' submodule up to the function that runs the asserts (seal_tests), with the
# checks they use (render_assert) as '#%kernel functions.
_SUBMODULE = f"""(module {_TESTS} '#%kernel
(#%provide {_RUN})
(define-values (multiplt-check)
  (lambda (same? actual expected)
    (if (same? actual expected)
        (void)
        (begin (write-string "FAILURE\\n" (current-error-port))
               (error 'check "~e is not ~e" actual expected)))))
(define-values (check-within)
  (lambda (actual expected epsilon)
    (letrec-values ([(within?) (lambda (a b)
                                 (if (if (number? a) (number? b) #f)
                                     (<= (magnitude (- a b)) epsilon)
                                     (equal?/recur a b within?)))])
      (multiplt-check within? actual expected))))
(define-values (check-equal?) (lambda (actual expected) (multiplt-check equal? actual expected)))
"""
#: what the sealed tests cannot keep out: the enclosing module's `module`, `require` and the call
#: of the tests' function are its own bindings, which only a macro (defined or renamed in), a
#: reader extension or another `#lang` could turn into something that reads their text (the nonce)
_TAMPERING = frozenset(
    "define-syntax define-syntaxes define-syntax-rule define-simple-macro "
    "define-syntax-parser define-syntax-parse-rule let-syntax letrec-syntax let-syntaxes "
    "letrec-syntaxes letrec-syntaxes+values splicing-let-syntax splicing-letrec-syntax "
    "splicing-let-syntaxes splicing-letrec-syntaxes rename-in prefix-in rename-out prefix-out "
    "filtered-in filtered-out #%require #%provide #reader #lang".split())
#: refused where they name a form (a list's first element, or an infix `. module .`) or are
#: bound by an import (`(require (only-in racket/base [quote module]))`): elsewhere they are a
#: variable of the translation's, such as a parameter named `module`
_MODULE = frozenset(("module", "module*"))
_REQUIRE = frozenset(("require", "local-require"))
_DELIMITERS = set(" \t\n\r\f\v()[]{}\",'`;")


def _tokens(text: str):
    """The identifier-like tokens of Racket code, outside strings and comments (`;`, `#|...|#`),
    each with whether it is in head position (a list's first datum, or after an infix `.`) and
    whether it is inside a `require` form; a datum after `#;` is read but is no list's first
    datum; a character literal (`#\\(`) is skipped."""
    # one frame per open list: [whether its next datum is its first, the heads of the lists
    # around it ending with its own, the `#;` pending before its next datum (their `first`)]
    frames = [[False, (), []]]
    i, n = 0, len(text)

    def datum_done(frame):
        frame[0] = frame[2].pop() if frame[2] else False

    while i < n:
        c, frame = text[i], frames[-1]
        if text.startswith("#\\", i):
            i += 3
            datum_done(frame)
        elif text.startswith("#;", i):
            i += 2
            frame[2].append(frame[0])
        elif c == ";":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("#|", i):
            depth, i = 1, i + 2
            while i < n and depth:
                depth += text.startswith("#|", i) - text.startswith("|#", i)
                i += 2 if text.startswith(("#|", "|#"), i) else 1
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            datum_done(frame)
        elif c in "([{":
            i += 1
            frames.append([True, frame[1] + (None,), []])
        elif c in ")]}":
            i += 1
            if len(frames) > 1:
                frames.pop()
                datum_done(frames[-1])
        elif c in _DELIMITERS:
            i += 1
        else:
            start = i
            while i < n and text[i] not in _DELIMITERS:
                i += 1
            token = text[start:i]
            name = token.replace("|", "").replace("\\", "").lower()
            head = frame[0]
            if head and len(frames) > 1 and not frame[2]:
                frame[1] = frame[1][:-1] + (name,)
            yield token, head, any(h in _REQUIRE for h in frame[1])
            datum_done(frame)
            if token == ".":
                frame[0] = True  # `(a . module . b)` reads as `(module a b)`


def _is_datum(value) -> bool:
    """Values that read the same inside a quoted #hash literal."""
    return value is None or isinstance(value, (bool, int, float, str))

