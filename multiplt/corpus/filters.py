"""The cheap filters, in pipeline order: async, generator, docstring, return value, ASCII, TODO,
too short."""

from __future__ import annotations

import ast
import io
import tokenize

from multiplt.corpus import tsnodes
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


class GeneratorFilter(Block):
    """No `yield` or `yield from` of its own (those of nested functions, lambdas and classes
    are theirs): calling a generator function returns a generator, so, as for an `async def`,
    no generated `assert f(x) == v` can pass (it compares the generator object), and its
    `return v` is no value a caller sees. Walks the body, so it runs after the async check."""

    name, reason = "generator", "generator_function"

    def check(self, row):
        for node in own_nodes(row["_node"]):
            if isinstance(node, (ast.Yield, ast.YieldFrom)):
                word = "yield from" if isinstance(node, ast.YieldFrom) else "yield"
                return f"`{word}` on line {node.lineno}: calling it returns a generator"
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


def own_nodes(node):
    """The nodes of this function's body, not those inside functions, lambdas or classes
    nested in it (their own scopes); in no particular order."""
    todo = list(node.body)
    while todo:
        child = todo.pop()
        yield child
        if not isinstance(child, NESTED_SCOPES):
            todo.extend(ast.iter_child_nodes(child))


def own_returns(node):
    """`return` statements of this function, not of functions or classes nested in it."""
    return (child for child in own_nodes(node) if isinstance(child, ast.Return))


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


def segment(src, node: ast.AST) -> str:
    """The source of `node`, from its first to its last character."""
    lines = [line.encode("utf-8") for line in src.lines[node.lineno - 1:node.end_lineno]]
    lines[-1] = lines[-1][:node.end_col_offset]
    lines[0] = lines[0][node.col_offset:]
    return "\n".join(line.decode("utf-8", "replace") for line in lines)


def tree_size(stmt: ast.Return, src) -> int:
    """The nodes of the statement's tree-sitter-python tree, itself and all its descendants
    (MultiPL-T's count_total_nodes), counted on Python's parser by tsnodes: `return len(s)` = 8
    (return_statement, `return`, call, len, argument_list, `(`, s, `)`)."""
    try:
        return tsnodes.statement_nodes(segment(src, stmt))
    except (SyntaxError, ValueError, IndexError, tokenize.TokenError):
        # never seen on the standard library: an estimate from the syntax tree alone (the
        # statement's nodes and its `return`)
        return 1 + sum(1 for n in ast.walk(stmt) if not isinstance(n, ast.expr_context))


def block_extras(node, src) -> bool:
    """Whether tree-sitter's block of this [docstring, return] body holds more children than the
    two statements: a comment or `;` beside them, from the docstring to the end of the return's
    line, or a comment on the first non-blank line after it indented at least as deep as the
    body (tree-sitter counts a tab as 8 columns)."""
    doc, ret = node.body
    first = doc.lineno
    lines = [" " * doc.col_offset + src.lines[first - 1].encode("utf-8")[doc.col_offset:].decode(
        "utf-8", "replace"), *src.lines[first:ret.end_lineno]]
    inside = [((s.lineno, s.col_offset), (s.end_lineno, s.end_col_offset)) for s in (doc, ret)]
    try:
        for tok in tokenize.generate_tokens(io.StringIO("\n".join(lines) + "\n").readline):
            if tok.type == tokenize.COMMENT or (tok.type == tokenize.OP and tok.string == ";"):
                row, col = tok.start[0] + first - 1, len(
                    lines[tok.start[0] - 1][:tok.start[1]].encode("utf-8"))
                if not any(a <= (row, col) < b for a, b in inside):
                    return True
    except (tokenize.TokenError, SyntaxError):
        pass
    after = next((line for line in src.lines[ret.end_lineno:] if line.strip(" \t\f\r")), "")
    return (after.lstrip(" \t\f\r").startswith("#")
            and ts_indent(after) >= ts_indent(src.lines[first - 1]))


def ts_indent(line: str) -> int:
    width = 0
    for c in line:
        if c == " ":
            width += 1
        elif c == "\t":
            width += 8
        elif c in "\f\r":
            width = 0
        else:
            break
    return width


class TooShortFilter(Block):
    """Docstring plus a single `return` of fewer than `min_nodes` tree-sitter nodes (MultiPL-T:
    9). MultiPL-T's test is "the function's block has exactly two children, the second a
    `return`", and a comment or `;` is a child there too: such a body is not checked."""

    name, reason = "too_short", "too_short"

    def __init__(self, min_nodes: int = 9):
        super().__init__()
        self.min_nodes = min_nodes

    def check(self, row):
        node = row["_node"]
        if (len(node.body) != 2 or docstring_of(node) is None
                or not isinstance(node.body[1], ast.Return)):
            return None
        size = tree_size(node.body[1], row["_src"])
        # the comment test tokenizes the function: only for the few returns short enough to drop
        if size >= self.min_nodes or block_extras(node, row["_src"]):
            return None
        return f"a single return of {size} nodes (< {self.min_nodes})"
