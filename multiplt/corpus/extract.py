"""Extraction: every top-level function of a document, with its source, name and `context`.

A document that is not UTF-8 (undecodable bytes, or a table's text that cannot be written as
UTF-8, such as a lone surrogate) or does not parse becomes one `syntax_error` row (counted and
skipped, never fatal); a leading byte-order mark is dropped, as Python drops it. Every
top-level `def` and `async def` (decorators included) becomes a row; whether it is async or has
a docstring is the next blocks' business (filters.AsyncFilter, filters.DocstringFilter), so the
funnel starts from all top-level functions. A function whose syntax tree is nested more than
MAX_DEPTH levels deep is excluded here as `too_deep`: later steps walk the tree recursively
(copy.deepcopy, ast.unparse) and would hit Python's recursion limit. Methods and nested
functions are never extracted.

Lines are split where Python's parser splits them (\\r\\n, \\r, \\n; not form feeds and the
other breaks `str.splitlines` knows), so AST line numbers index them.

`context` holds the module-level statements the function needs, in source order: its imports,
the module-level names (constants, helper functions, classes) it reads, what those need in
turn, `from __future__` imports and star imports. A name is read from the module when Python's
symbol table resolves it there: a function's parameters and locals (and those of the functions,
lambdas, classes and comprehensions nested in it) are not. Type checking and test generation
run `context + content`. A shard asks for it lazily (`lazy_context`, then `fill_context` for the
rows the per-row filters keep): no filter before the type check reads it, and most rows are
dropped there.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import re
import symtable
import warnings

from multiplt.corpus.sources import Document

BUILTIN_NAMES = frozenset(dir(builtins))
FUNCTION_TYPES = (ast.FunctionDef, ast.AsyncFunctionDef)
LINE_BREAK = re.compile(r"\r\n|\r|\n")
BOM = "\ufeff"
# deeper trees are `too_deep`: copy.deepcopy and ast.unparse take up to ~6 frames a level, so
# 100 levels stay well inside Python's default recursion limit (1000); the standard library's
# deepest top-level function has 32
MAX_DEPTH = 100
TOO_DEEP = "too_deep"


def sha1(text: str) -> str:
    # surrogatepass: a lone surrogate hashes instead of raising (decode keeps such text out)
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


def source_lines(text: str) -> list[str]:
    """The lines of Python source as its parser counts them: split at \\r\\n, \\r and \\n only."""
    return LINE_BREAK.split(text)


class SourceText:
    """A parsed document: its lines, and source segments by whole lines."""

    def __init__(self, text: str):
        self.text = text
        self.lines = source_lines(text)

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
        try:
            doc.data.encode("utf-8")
        except UnicodeEncodeError as exc:
            return None, f"not UTF-8: {exc}"
        return doc.data.removeprefix(BOM), ""
    try:
        return doc.data.decode("utf-8-sig"), ""
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


def depth(node: ast.AST) -> int:
    """How many levels deep the syntax tree under `node` goes (counted without recursing)."""
    deepest, todo = 0, [(node, 1)]
    while todo:
        node, level = todo.pop()
        deepest = max(deepest, level)
        todo.extend((child, level + 1) for child in ast.iter_child_nodes(node))
    return deepest


def extract(doc: Document, lazy_context: bool = False) -> tuple[list[dict], list[dict]]:
    """(function rows, excluded rows): the rows of its top-level functions, those nested too
    deeply excluded as `too_deep`; or ([], [the document's syntax_error row]).

    With `lazy_context`, a row's `context` is left empty and the row holds what computes it
    (`_context`: see `fill_context`), so rows dropped before anything reads their context (the
    per-row filters: most rows) never cost the symbol tables and module text it takes; the
    module's names are indexed only when a row of it asks for its context."""
    text, detail = decode(doc)
    if text is None:
        return [], [file_row(doc, None, detail)]
    tree, detail = parse(text)
    if tree is None:
        return [], [file_row(doc, text, detail)]
    src = SourceText(text)
    module = _LazyModule(tree, src)
    rows, excluded = [], []
    for index, node in enumerate(tree.body):
        if not isinstance(node, FUNCTION_TYPES):
            continue
        content = src.lines_of(node)
        row = {"content": content, "id": f"{doc.origin}:{node.lineno}:{node.name}",
               "sha1": sha1(content), "entrypoint": node.name, "context": "", "line": node.lineno,
               **doc.provenance}
        levels = depth(node)
        if levels > MAX_DEPTH:
            excluded.append({**row, "reason": TOO_DEEP,
                             "detail": f"syntax tree {levels} levels deep (more than {MAX_DEPTH})"})
            continue
        if lazy_context:
            rows.append({**row, "_node": node, "_src": src, "_context": (module, index)})
        else:
            row["context"] = module.context_for(index)
            rows.append({**row, "_node": node, "_src": src})
    return rows, excluded


def fill_context(row: dict) -> None:
    """Sets the `context` of a row that `extract(..., lazy_context=True)` made, once."""
    module, index = row.pop("_context")
    row["context"] = module.context_for(index)


class _LazyModule:
    """A document's ModuleNames, built when the first of its functions needs a context."""

    def __init__(self, tree: ast.Module, src: SourceText):
        self.tree, self.src, self.names = tree, src, None

    def context_for(self, function: int) -> str:
        if self.names is None:
            self.names = ModuleNames(self.tree, self.src)
        return self.names.context_for(function)


def loaded_names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def module_reads(stmt: ast.stmt, src: SourceText) -> set[str]:
    """The names a module-level statement reads from the module: those it loads at module level
    (decorators, defaults and annotations included) and those the scopes in it (functions,
    lambdas, classes, comprehensions) resolve to the module, by Python's symbol table of the
    statement's lines; a parameter or local of a function is not one. Where Python cannot build
    that table (a duplicate parameter, say: the statement would not compile), every name the
    statement loads counts."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            top = symtable.symtable(src.lines_of(stmt), "<statement>", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return loaded_names(stmt)
    names: set[str] = set()
    todo = [top]
    while todo:
        table = todo.pop()
        names.update(s.get_name() for s in table.get_symbols()
                     if s.is_referenced() and (table is top or s.is_global()))
        todo.extend(table.get_children())
    return names


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


def is_main_guard(stmt: ast.stmt) -> bool:
    """`if __name__ == "__main__":` (either side of the `==`) with no `else`: its body runs only
    when the module is a script, never when it is imported, so what it binds is not the
    function's to use, and a context that held it would run the script's main code in type
    checking and test generation."""
    if not isinstance(stmt, ast.If) or stmt.orelse or not isinstance(stmt.test, ast.Compare):
        return False
    test = stmt.test
    if len(test.ops) != 1 or not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    mains = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(mains) == 1


class ModuleNames:
    """Which module-level statement binds which name, and which module names each one reads."""

    def __init__(self, tree: ast.Module, src: SourceText):
        self.binders: dict[str, list[int]] = {}
        self.always: list[int] = []
        self._reads: dict[int, set[str]] = {}
        self.stmts, self.src = tree.body, src
        for index, stmt in enumerate(tree.body):
            if isinstance(stmt, ast.ImportFrom) and (stmt.module == "__future__"
                                                     or any(a.name == "*" for a in stmt.names)):
                self.always.append(index)
                continue
            if is_main_guard(stmt):  # runs only as a script: binds nothing for the function
                continue
            for name in bound_names(stmt):
                self.binders.setdefault(name, []).append(index)

    def reads(self, index: int) -> set[str]:
        if index not in self._reads:
            self._reads[index] = module_reads(self.stmts[index], self.src) - BUILTIN_NAMES
        return self._reads[index]

    def context_for(self, function: int) -> str:
        """The context of the function defined by module-level statement `function`."""
        wanted = set(self.always)
        todo = list(self.reads(function) - {self.stmts[function].name})  # type: ignore[attr-defined]
        seen = set(todo)
        while todo:
            name = todo.pop()
            for index in self.binders.get(name, ()):
                if index in wanted or index == function:
                    continue
                wanted.add(index)
                for more in self.reads(index) - seen:
                    seen.add(more)
                    todo.append(more)
        return "".join(self.src.lines_of(self.stmts[i]) for i in sorted(wanted))
