"""Extraction: every top-level function of a document, with its source, name and `context`.

A document that is not UTF-8 or does not parse becomes one `syntax_error` row (counted and
skipped, never fatal). Every top-level `def` and `async def` (decorators included) becomes a
row; whether it has a docstring is the next block's business (filters.DocstringFilter), so the
funnel starts from all top-level functions. Methods and nested functions are never extracted.

`context` holds the module-level statements the function needs, in source order: its imports,
the module-level names (constants, helper functions, classes) it reads, what those need in
turn, `from __future__` imports and star imports. Type checking and test generation run
`context + content`.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import warnings

from multiplt.corpus.sources import Document

BUILTIN_NAMES = frozenset(dir(builtins))
FUNCTION_TYPES = (ast.FunctionDef, ast.AsyncFunctionDef)


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class SourceText:
    """A parsed document: its lines, and source segments by whole lines."""

    def __init__(self, text: str):
        self.text = text
        self.lines = text.splitlines()

    def lines_of(self, node: ast.stmt) -> str:
        start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))])
        chunk = self.lines[start - 1:node.end_lineno]
        return "\n".join(line.rstrip() for line in chunk).strip("\n") + "\n"

    def at(self, node: ast.expr, length: int) -> str:
        """Up to `length` characters of the source starting where `node` starts."""
        line = self.lines[node.lineno - 1]
        return line.encode("utf-8")[node.col_offset:].decode("utf-8", "replace")[:length]


def decode(doc: Document) -> tuple[str | None, str]:
    if doc.data is None:
        return None, "content is not a string"
    if isinstance(doc.data, str):
        return doc.data, ""
    try:
        return doc.data.decode("utf-8"), ""
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8: {exc}"


def parse(text: str) -> tuple[ast.Module | None, str]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences etc. in old code
            return ast.parse(text), ""
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return None, f"{type(exc).__name__}: {exc}"


def file_row(doc: Document, text: str | None, detail: str) -> dict:
    content = text or ""
    return {"content": content, "id": doc.origin, "sha1": sha1(content), "entrypoint": "",
            "context": "", "line": 0, **doc.provenance, "reason": "syntax_error", "detail": detail}


def extract(doc: Document) -> tuple[list[dict], dict | None]:
    """(function rows, None) or ([], the document's syntax_error row)."""
    text, detail = decode(doc)
    if text is None:
        return [], file_row(doc, None, detail)
    tree, detail = parse(text)
    if tree is None:
        return [], file_row(doc, text, detail)
    src = SourceText(text)
    module = ModuleNames(tree)
    rows = []
    for node in tree.body:
        if not isinstance(node, FUNCTION_TYPES):
            continue
        content = src.lines_of(node)
        rows.append({"content": content, "id": f"{doc.origin}:{node.lineno}:{node.name}",
                     "sha1": sha1(content), "entrypoint": node.name,
                     "context": module.context_for(node, src), "line": node.lineno,
                     **doc.provenance, "_node": node, "_src": src})
    return rows, None


def loaded_names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def bound_names(stmt: ast.stmt) -> set[str]:
    """Names a module-level statement binds (imports, assignments, defs, inside if/try too)."""
    names: set[str] = set()
    for node in ast.walk(stmt) if isinstance(stmt, (ast.If, ast.Try)) else [stmt]:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (*FUNCTION_TYPES, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return names


class ModuleNames:
    """Which module-level statement binds which name."""

    def __init__(self, tree: ast.Module):
        self.binders: dict[str, list[int]] = {}
        self.always: list[int] = []
        self._reads: dict[int, set[str]] = {}
        self.stmts = tree.body
        for index, stmt in enumerate(tree.body):
            if isinstance(stmt, ast.ImportFrom) and (stmt.module == "__future__"
                                                     or any(a.name == "*" for a in stmt.names)):
                self.always.append(index)
                continue
            for name in bound_names(stmt):
                self.binders.setdefault(name, []).append(index)

    def context_for(self, function: ast.stmt, src: SourceText) -> str:
        wanted = set(self.always)
        todo = list(loaded_names(function) - BUILTIN_NAMES - {function.name})  # type: ignore[attr-defined]
        seen = set(todo)
        while todo:
            name = todo.pop()
            for index in self.binders.get(name, ()):
                if index in wanted or self.stmts[index] is function:
                    continue
                wanted.add(index)
                if index not in self._reads:
                    self._reads[index] = loaded_names(self.stmts[index]) - BUILTIN_NAMES
                for more in self._reads[index] - seen:
                    seen.add(more)
                    todo.append(more)
        return "".join(src.lines_of(self.stmts[i]) for i in sorted(wanted))
