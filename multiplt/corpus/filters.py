"""The cheap filters, in pipeline order: async, docstring, return value, ASCII, TODO, too short."""

from __future__ import annotations

import ast
import io
import tokenize

from multiplt.corpus.blocks import Block

NESTED_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
DOCSTRING_OPENERS = ('"""', "'''")
STRING_PREFIXES = "rRuU"  # r"""...""" and u"""...""" are docstrings; b and f strings are not


def docstring_of(node) -> ast.Constant | None:
    first = node.body[0] if node.body else None
    if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)):
        return first.value
    return None


class AsyncFilter(Block):
    """A plain `def`: an `async def` returns a coroutine, so no generated `assert f(x) == v`
    can pass (it compares the coroutine) and `multiplt translate` refuses it. The cheapest
    check (the node's type), so it runs first and no later block spends time on these."""

    name, reason = "async_def", "async_function"

    def check(self, row):
        if isinstance(row["_node"], ast.AsyncFunctionDef):
            return "an `async def` returns a coroutine"
        return None


class DocstringFilter(Block):
    """The first statement is a triple-quoted string: MultiPL-T took `\"\"\"` only; `'''` and
    `r\"\"\"` are docstrings too (a one-quote string or a later string is not)."""

    name, reason = "docstring", "no_docstring"

    def check(self, row):
        doc = docstring_of(row["_node"])
        if doc is None:
            return "first statement is not a string"
        opener = row["_src"].at(doc, 5).lstrip(STRING_PREFIXES)[:3]
        if opener not in DOCSTRING_OPENERS:
            return f"docstring opens with {opener[:1]!r}, not a triple quote"
        return None


def own_returns(node):
    """`return` statements of this function, not of functions or classes nested in it."""
    todo = list(node.body)
    while todo:
        child = todo.pop()
        if isinstance(child, ast.Return):
            yield child
        if not isinstance(child, NESTED_SCOPES):
            todo.extend(ast.iter_child_nodes(child))


class ReturnFilter(Block):
    """At least one `return <expr>` of its own; a bare `return` does not count (MultiPL-T)."""

    name, reason = "return_value", "no_return_value"

    def check(self, row):
        if any(r.value is not None for r in own_returns(row["_node"])):
            return None
        return "no `return <expression>`"


class AsciiFilter(Block):
    name, reason = "ascii", "non_ascii"

    def check(self, row):
        return None if row["content"].isascii() else "source has non-ASCII characters"


class TodoFilter(Block):
    name, reason = "todo", "todo"

    def check(self, row):
        return "source contains TODO" if "TODO" in row["content"] else None


IGNORED_TOKENS = {tokenize.NEWLINE, tokenize.NL, tokenize.COMMENT, tokenize.INDENT,
                  tokenize.DEDENT, tokenize.ENDMARKER}
LEAVES = (ast.Name, ast.Constant, ast.expr_context, ast.operator, ast.boolop, ast.cmpop,
          ast.unaryop)


def tree_size(stmt: ast.Return, src) -> int:
    """A tree-sitter-like node count of a statement: its tokens (tree-sitter's leaves) plus its
    inner syntax nodes (`return a + b` = 6: return_statement, `return`, binary_operator, a, +, b)."""
    first = src.lines[stmt.lineno - 1].encode("utf-8")[stmt.col_offset:].decode("utf-8", "replace")
    text = "\n".join([first, *src.lines[stmt.lineno:stmt.end_lineno]])
    try:
        tokens = sum(1 for t in tokenize.generate_tokens(io.StringIO(text).readline)
                     if t.type not in IGNORED_TOKENS)
    except (tokenize.TokenError, SyntaxError, IndentationError):
        tokens = sum(1 for n in ast.walk(stmt) if isinstance(n, LEAVES))
    inner = sum(1 for n in ast.walk(stmt) if not isinstance(n, LEAVES))
    return tokens + inner


class TooShortFilter(Block):
    """Docstring plus a single `return` of fewer than `min_nodes` nodes (MultiPL-T: 9)."""

    name, reason = "too_short", "too_short"

    def __init__(self, min_nodes: int = 9):
        super().__init__()
        self.min_nodes = min_nodes

    def check(self, row):
        body = row["_node"].body[1:] if docstring_of(row["_node"]) else row["_node"].body
        if len(body) != 1 or not isinstance(body[0], ast.Return):
            return None
        size = tree_size(body[0], row["_src"])
        return f"a single return of {size} nodes (< {self.min_nodes})" if size < self.min_nodes else None
