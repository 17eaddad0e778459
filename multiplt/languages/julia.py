"""Julia (`jl`): tests are `@test` lines in a `@testset`; exact equality."""

from __future__ import annotations

import re

from multiplt.languages.base import (ASSERTION_ERROR, EXCEPTION, OK, SYNTAX_ERROR, Language,
                                     Param, Unsupported, checked_nonce, contains, first_match)
from multiplt.languages.types import PyType

_ESCAPES = {"\\": "\\\\", '"': '\\"', "$": "\\$", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_SCALARS = {"int": "Int64", "float": "Float64", "bool": "Bool", "str": "String", "none": "Nothing",
            "any": "Any"}


_MODULES = r"(?:Base|Core|Test|Main)"
#: the names the tests and their seal use (render_test_file, render_value, seal_tests)
_USED = (r"(?:Test|Base|Core|Main|Vector|Dict|Tuple|Int64|Float64|String|Bool|Nothing|Any|Union|"
         r"Vararg|Inf|NaN|nothing|abs|println|flush|stdout)")
_ARGS = r"\((?:[^()]|\((?:[^()]|\([^()]*\))*\))*\)"  # an argument list, over lines, nested twice
_OPERAND = r"[\w.]+(?:\s*::\s*[\w.]+(?:\{[^\n=]*?\})?)?"  # `a`, `a::Vector{Int64}`
#: what a translation cannot do to the tests after it: define a macro (`@test`, `@testset` of its
#: own, `var"@test"`), add a method to a function of Base, Core, Test or Main (`Base.:(==)(a, b) =
#: true`, `function Base.isequal`, or after `import Base: ==`; an alias of one of those modules),
#: define `==` or a name the tests use in Main, or evaluate code it builds (`eval`, `include`,
#: `ccall`, `unsafe_*`). Read on the code without its comments and string literals (_code).
_TAMPERING = tuple(re.compile(p, re.MULTILINE) for p in (
    r"(?<![\w.@])macro\s+[\w@]",
    rf"(?<![\w.])var\"(?!(?!{_USED}\")[A-Za-z_]\w*\")[^\"\n]*\"",
    rf"(?<![\w.])import\s+\.*\s*{_MODULES}\s*(?:$|[,;:]|as\b)",
    rf"(?<![\w.])import\s+\.*\s*{_MODULES}\s*\.\s*(?![A-Z]\w*\s*(?:$|[,;:.]|as\b))\S+",
    rf"(?<![\w.])(?:const\s+|global\s+|local\s+)?[A-Za-z_]\w*\s*=\s*{_MODULES}\s*(?:$|[;#)])",
    rf"(?<![\w.])function\s+{_MODULES}\s*\.",
    rf"(?<![\w.]){_MODULES}\s*\.\s*(?::\s*\(\s*[^\s()]+\s*\)|:?[^\s(]+)\s*(?:\{{[^\n]*?\}})?\s*"
    rf"{_ARGS}[ \t]*(?:::[^\n=]*?)?(?:\s+where\b[^\n=]*?)?[ \t]*=(?!=)",
    r"(?:(?<![\w.])function\s+|^[ \t]*(?:(?:global|local|const)\s+)?)\(?\s*==\s*\)?\s*\(",
    rf"^[ \t]*(?:(?:global|local|const)\s+)?\(?\s*{_OPERAND}\s*==\s*{_OPERAND}\s*\)?"
    r"(?:\s+where\b[^\n=]*?)?[ \t]*=(?!=)",
    rf"^[ \t]*(?:const\s+|global\s+)?{_USED}\s*=(?!=)",
    rf"^[ \t]*(?:const\s+|global\s+)?{_USED}\s*(?:\{{[^\n]*?\}}\s*)?{_ARGS}[ \t]*"
    r"(?:::[^\n=]*?)?(?:\s+where\b[^\n=]*?)?=(?!=)",
    rf"(?<![\w.])(?:function|struct|mutable\s+struct|abstract\s+type|primitive\s+type|module|"
    rf"baremodule)\s+{_USED}\b",
    r"(?<![\w.])(?:global\s+)[^\n]*?(?<![\w.])" + _USED + r"\s*=(?!=)",
    r"(?<![\w.])@?eval\b|(?<![\w.])(?:include|include_string|ccall|cglobal)\s*\(|@ccall\b|"
    r"(?<![\w.])unsafe_\w+",
))
# a submodule's names imported to be extended: `import Base.Iterators: zip, partition as p`
_SUBMODULE_IMPORT = re.compile(rf"(?<![\w.])import\s+\.*\s*{_MODULES}\s*\.[^\n;:]*:((?:[^\n;]*,[ \t]*\n)*[^\n;]*)")
# a comment (`#`, nested `#= =#`), a string (`"`, `"""`, prefixed: `raw"..."`), a character
# literal, or a `var"..."` name (kept)
_LEXEMES = re.compile(r'(?P<var>(?<![\w.])var"[^"\n]*")|#=|#[^\n]*|(?P<str>(?:(?<![\w.])[A-Za-z_]\w*)?'
                      r'(?P<q>"""|"|`))|(?<![\w.)\]}\'])\'(?:\\.|[^\\\'\n])+\'')


def _code(text: str) -> str:
    """Julia code without its comments, with each string literal `""` (one with an interpolated
    `$(...)` kept, as code) and `var"..."` names as written: what the static check reads."""
    out, i, n = [], 0, len(text)
    while True:
        found = _LEXEMES.search(text, i)
        if not found:
            return "".join(out) + text[i:]
        out.append(text[i:found.start()])
        lexeme, i = found.group(0), found.end()
        if found["var"]:
            out.append(lexeme)
        elif lexeme == "#=":
            depth = 1
            while i < n and depth:
                depth += text.startswith("#=", i) - text.startswith("=#", i)
                i += 2 if text.startswith(("#=", "=#"), i) else 1
            out.append(" ")
        elif found["str"]:
            quote, start = found["q"], i
            while i < n and not text.startswith(quote, i):
                i += 2 if text[i] == "\\" else 1
            body, i = text[start:i], min(n, i + len(quote))
            out.append(lexeme + body + quote if "$(" in body else '""')
        elif not lexeme.startswith("#"):
            out.append("' '")


def _extends_imported(code: str) -> str | None:
    """`import Base.Iterators: zip` (or `import Base.Iterators.zip`) and a method of `zip` defined:
    the submodule's function may be Base's own (Base.Iterators.zip is Base.zip)."""
    names = {}
    for found in _SUBMODULE_IMPORT.finditer(code):
        for item in found[1].split(","):
            words = item.split()
            if words:
                names[words[-1]] = found.group(0)
    for found in re.finditer(rf"(?<![\w.])import\s+\.*\s*{_MODULES}\s*(?:\.\s*[A-Z]\w*\s*)+\.\s*(\w+)"
                             r"(?:\s+as\s+(\w+))?", code):
        names[found[2] or found[1]] = found.group(0)
    for name, imported in names.items():
        if not re.fullmatch(r"[A-Za-z_]\w*!?", name):
            return " ".join(imported.split())[:60]  # an operator: refused as `import Base: ==`
        if re.search(rf"(?<![\w.])function\s+{re.escape(name)}\b|^[ \t]*\(?{re.escape(name)}\)?\s*"
                     rf"(?:\{{[^\n]*?\}}\s*)?{_ARGS}[ \t]*(?:::[^\n=]*?)?(?:\s+where\b[^\n=]*?)?=(?!=)",
                     code, re.MULTILINE):
            return " ".join(imported.split())[:60]
    return None


def julia_string(text: str) -> str:
    """A Julia string literal: `"`, `\\` and `$` (interpolation) escaped."""
    return '"' + "".join(_ESCAPES.get(c, c) for c in text) + '"'


def julia_float(value) -> str:
    """A Float64 literal; Python's inf, -inf and nan are Julia's `Inf`, `-Inf` and `NaN`."""
    text = repr(float(value))
    return {"inf": "Inf", "-inf": "-Inf", "nan": "NaN"}.get(text, text)


def _literal_infers(t: PyType) -> bool:
    """Whether Julia infers exactly `Vector{t}` from a plain `[a, b]` literal of these elements."""
    return t.kind in ("int", "float", "bool", "str")


class JuliaLanguage(Language):
    code = "jl"
    name = "julia"
    file_ext = "jl"
    stop_tokens = ("\nfunction", "\nmacro", "\n\n")
    timeout = 5.0
    binaries = ("julia",)
    test_library = "Test"
    packages = ()  # no Debian package: the sandbox image installs Julia's own tarball
    test_marker = "\nusing Test"
    comment = ("#", "")
    empty_comment = r"#+"
    comment_patterns = (r"#=.*?=#", r'""".*?"""', r"#[^\n]*")
    terms = {"array": "vector", "list": "vector", "tuple": "tuple", "dictionary": "dictionary",
             "None": "nothing", "True": "true", "False": "false"}
    strict_types = True
    keywords = frozenset(
        "baremodule begin break catch const continue do else elseif end export false finally for "
        "function global if import let local macro module quote return struct true try using "
        "while abstract mutable primitive type where in isa".split())

    # ---- writing problems ----------------------------------------------------------------------
    def render_type(self, t: PyType) -> str:
        if t.kind in _SCALARS:
            return _SCALARS[t.kind]
        if t.kind == "unknown":
            raise Unsupported("a type could not be inferred (only empty containers seen)")
        inner = [self.render_type(a) for a in t.args]
        if t.kind == "list":
            return f"Vector{{{inner[0]}}}"
        if t.kind == "tuple":
            return "Tuple{" + ", ".join(inner) + "}"
        if t.kind == "vtuple":
            return f"Tuple{{Vararg{{{inner[0]}}}}}"
        if t.kind == "dict":
            return f"Dict{{{inner[0]}, {inner[1]}}}"  # MultiPL-E added a stray `>` here
        if t.kind == "optional" and t.args[0].kind == "union":
            return "Union{" + ", ".join(self.render_type(a) for a in t.args[0].args) + ", Nothing}"
        if t.kind == "optional":
            return f"Union{{{inner[0]}, Nothing}}"
        if t.kind == "union":
            return "Union{" + ", ".join(inner) + "}"
        raise Unsupported(f"no Julia type for {t}")

    def render_value(self, value, t: PyType) -> str:
        if value is None:
            return "nothing"
        if isinstance(value, bool):
            return "true" if value else "false"
        if t.kind == "float" or isinstance(value, float):
            return julia_float(value)
        if isinstance(value, int):
            return repr(value)
        if isinstance(value, str):
            return julia_string(value)
        if t.kind == "list":
            elem = t.args[0]
            items = ", ".join(self.value(v, elem) for v in value)
            if not value:
                return f"Vector{{{self.render_type(elem)}}}([])"
            return f"[{items}]" if _literal_infers(elem) else f"{self.render_type(elem)}[{items}]"
        if t.kind in ("tuple", "vtuple"):
            elems = t.args if t.kind == "tuple" else [t.args[0]] * len(value)
            items = [self.value(v, e) for v, e in zip(value, elems)]
            return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
        if t.kind == "dict":
            kt, vt = t.args
            pairs = ", ".join(f"{self.value(k, kt)} => {self.value(v, vt)}" for k, v in value.items())
            return f"{self.render_type(t)}({pairs})"
        raise Unsupported(f"cannot render {value!r} as {t}")

    def render_prompt(self, name: str, params: list[Param], returns: PyType, description: str) -> str:
        doc = description.replace("\\", "\\\\").replace("$", "\\$").replace('"""', '\\"\\"\\"')
        args = ", ".join(f"{self.identifier(p.name)}::{self.render_type(p.type)}" for p in params)
        return f'"""{doc}\n"""\nfunction {self.identifier(name)}({args})::{self.render_type(returns)} \n'

    def render_assert(self, call: str, expected: str, tolerance: float | None) -> str:
        if tolerance is not None:
            return f"\t@test(abs({call} - {expected}) < {tolerance!r})"
        return f"\t@test({call} == {expected})"

    def render_test_file(self, name: str, asserts: list[str]) -> str:
        body = "\n".join(asserts)
        return f"using Test\n\n@testset begin\n\ncandidate = {self.identifier(name)};\n{body}\nend\n"

    def seal_tests(self, tests: str, nonce: str) -> str:
        # the outermost @testset throws (exit 1) when a test failed or raised, before the last line
        return f"{tests}Base.println(\"{checked_nonce(nonce)}\")\nBase.flush(Base.stdout)\n"

    def tampers_with_tests(self, prompt: str, completion: str) -> str | None:
        # Julia's tests run in Main after the translation, and a method the translation adds to
        # Base's `==` (or a macro `@test` of Main's own) changes them wherever they are written:
        # no sealing keeps that out. What is refused instead: see _TAMPERING.
        code = _code(completion)
        return first_match(code, _TAMPERING) or _extends_imported(code)

    def return_body(self, expr: str) -> str:
        return f"    return {expr}\nend\n"

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
