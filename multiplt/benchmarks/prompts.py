"""Read a HumanEval-format Python prompt and write its description in a target language.

The prompt is Python: imports, maybe helper functions (HumanEval 10, 32, 38, 50), and the entry
function's signature with its docstring. `parse_prompt` extracts the signature and the docstring;
`describe` turns the docstring into the target language's description the way MultiPL-E does:
blank lines dropped, common indentation removed, the "reworded" vocabulary of terms.csv
substituted outside doctests, and each `>>> call` / result doctest pair re-rendered in the
target language ("transform"). Example lines in prose form (`f(x) ➞ y`, `f(x) == y`) are
re-rendered in place too, when both sides are literals.
"""

from __future__ import annotations

import ast
import dataclasses
import re

from multiplt.languages.base import Language, Param, Unsupported
from multiplt.languages.types import PyType, TypeParseError, parse


@dataclasses.dataclass
class Signature:
    name: str
    arg_names: list[str]
    annotations: list[PyType | None]
    returns: PyType | None
    docstring: str
    helpers: list[str]  # source of other functions the prompt defines


class PromptError(ValueError):
    pass


def parse_prompt(prompt: str, entry_point: str) -> Signature:
    try:
        module = ast.parse(prompt + "\n    pass\n")
    except SyntaxError as exc:
        raise PromptError(f"prompt does not parse: {exc.msg}") from None
    funcs = [n for n in module.body if isinstance(n, ast.FunctionDef)]
    entry = [f for f in funcs if f.name == entry_point]
    if not entry:
        raise PromptError(f"prompt defines no function {entry_point!r}")
    fn = entry[-1]
    a = fn.args
    if a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs or a.defaults:
        raise PromptError("signature uses *args, **kwargs, keyword-only or default arguments")
    try:
        annotations = [parse(arg.annotation) for arg in a.args]
        returns = parse(fn.returns)
    except (TypeParseError, SyntaxError) as exc:
        raise PromptError(f"unsupported annotation: {exc}") from None
    doc = ast.get_docstring(fn, clean=False)
    if doc is None:  # HumanEval 115 puts `import math` before its docstring
        doc = next((st.value.value for st in fn.body if isinstance(st, ast.Expr)
                    and isinstance(st.value, ast.Constant) and isinstance(st.value.value, str)), None)
    if doc is None:
        raise PromptError("the function has no docstring")
    helpers = [ast.get_source_segment(prompt, f) or ast.unparse(f) for f in funcs if f is not fn]
    return Signature(fn.name, [arg.arg for arg in a.args], annotations, returns, doc, helpers)


def clean_docstring(doc: str) -> list[str]:
    """Docstring lines with blank lines dropped and the common indentation (from the second
    line, as MultiPL-E does) removed."""
    lines = [line.rstrip() for line in doc.split("\n") if line.strip()]
    if not lines:
        return []
    indent = len(lines[1]) - len(lines[1].lstrip()) if len(lines) > 1 else 0
    out = [lines[0].strip()]
    for line in lines[1:]:
        lead = len(line) - len(line.lstrip())
        out.append(line[min(lead, indent):])
    return out


def reword(line: str, terms: dict[str, str]) -> str:
    """terms.csv substitution: whole words only, all terms at once."""
    pattern = re.compile(r"\b(" + "|".join(re.escape(t) for t in terms) + r")\b")
    return pattern.sub(lambda m: terms[m.group(1)], line)


_PROSE_EXAMPLE = re.compile(r"^(?P<lead>.*?)(?P<call>\b\w+\(.*\))(?P<sep>\s*(?:==|➞|=>|->|should return)\s*)"
                            r"(?P<result>.+?)(?P<tail>[\s.]*)$")


class _Doc:
    def __init__(self, lang: Language, sig: Signature, params: list[Param], returns: PyType):
        self.lang, self.sig, self.params, self.returns = lang, sig, params, returns

    def call(self, text: str) -> str | None:
        """Render `f(literals...)` in the target language, or None when it is not such a call."""
        try:
            node = ast.parse(text.strip(), mode="eval").body
        except SyntaxError:
            return None
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == self.sig.name and not node.keywords
                and len(node.args) == len(self.params)):
            return None
        try:
            values = [ast.literal_eval(a) for a in node.args]
            args = [self.lang.value(v, p.type) for v, p in zip(values, self.params)]
        except (ValueError, TypeError, SyntaxError, Unsupported, RecursionError):
            return None
        return self.lang.render_call(self.lang.identifier(self.sig.name), args)

    def result(self, text: str) -> str | None:
        try:
            return self.lang.value(ast.literal_eval(text.strip()), self.returns)
        except (ValueError, TypeError, SyntaxError, Unsupported, RecursionError, MemoryError):
            return None


def describe(lang: Language, sig: Signature, params: list[Param], returns: PyType,
             reworded: bool = True, transform: bool = True) -> str:
    """The description for the target language's prompt (no comment markers yet)."""
    lines = clean_docstring(sig.docstring)
    doc = _Doc(lang, sig, params, returns)
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        if stripped.startswith(">>>"):
            result_line = lines[i + 1] if i + 1 < len(lines) and not lines[i + 1].lstrip().startswith(">>>") else None
            call = doc.call(stripped[3:]) if transform else None
            result = doc.result(result_line) if (call and result_line is not None) else None
            if call and (result_line is None or result is not None):
                rendered = lang.render_doctest(call, result)
                out.extend(indent + r for r in rendered)
            else:
                out.append(line)
                if result_line is not None:
                    out.append(result_line)
            i += 2 if result_line is not None else 1
            continue
        m = _PROSE_EXAMPLE.match(line) if transform else None
        if m:
            call, result = doc.call(m.group("call")), doc.result(m.group("result"))
            if call and result:
                lead = reword(m.group("lead"), lang.terms) if reworded else m.group("lead")
                out.append(f"{lead}{call}{m.group('sep')}{result}{m.group('tail')}")
                i += 1
                continue
        out.append(reword(line, lang.terms) if reworded else line)
        i += 1
    if sig.helpers:
        out.append("The Python function(s) this one builds on:")
        for helper in sig.helpers:
            out.extend(line for line in helper.split("\n") if line.strip())
    return "\n".join(out)
