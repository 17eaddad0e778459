"""Tree-sitter node counts from Python's own parser, for the too-short rule.

MultiPL-T drops a function whose body is its docstring plus one `return` of fewer than 9 nodes,
counting the nodes of the return statement's tree-sitter-python tree: the statement itself and
all its descendants, named or not (keywords, punctuation, comments included). Its grammar was
tree-sitter-python 0.20.4 (the submodule pins a commit just after that tag). This module gets
the same count without tree-sitter:

- leaves are Python's tokens (a comment is one; a `\\` line continuation is a
  `line_continuation` node), except string literals (below);
- inner nodes are the AST's, with tree-sitter's shape: a call's `argument_list` (absent when a
  generator expression is the only argument), one `pair` per dict item (`dictionary_splat` per
  `**d`), one `if_clause` per comprehension `if`, one `boolean_operator` per `and`/`or`, a
  `parenthesized_expression` per pair of parentheses that is not a call's, a tuple's or a
  generator's, `lambda_parameters` / `default_parameter` / separators as tree-sitter has them, and
  no node for a subscript's unparenthesized tuple (`a[1, 2]`);
- a string is `string` + `string_start` + `string_content` (one per stretch of text between
  interpolations, holding an `escape_sequence` / `escape_interpolation` node for each escape the
  grammar recognises) + `string_end`; an f-string's `{...}` is an `interpolation` (with `=`,
  `type_conversion`, `format_specifier` / `format_expression` nodes); implicitly concatenated
  strings sit under one `concatenated_string`. The string scanner below follows the grammar's
  (its quirks included: `\\0` is no escape sequence there, a raw string holding only `\\\\` has
  no `string_content`).

Newer grammars differ slightly (0.25 makes `not in` and `is not` a node over two keywords).
"""

from __future__ import annotations

import ast
import bisect
import io
import re
import tokenize

SKIPPED = {tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
LEAVES = (ast.Name, ast.Constant, ast.expr_context, ast.operator, ast.boolop, ast.cmpop,
          ast.unaryop)
ESCAPE = re.compile(r"""\\(u[a-fA-F\d]{4}|U[a-fA-F\d]{8}|x[a-fA-F\d]{2}|\d{3}|\r?\n|['"abfrntv\\]"""
                    r"|N\{[^}]+\})")
CONTINUATION = re.compile(r"\\\r?\n")
QUOTES = "'\""
PREFIX = "rRbBuUfF"


def statement_nodes(text: str) -> int:
    """Nodes of a `return` statement's tree; `text` is its source, from `return` to its end."""
    rest = text[len("return"):]
    if not rest.strip():
        return 2
    return 2 + expression_nodes(rest)


def is_string(node: ast.AST) -> bool:
    return isinstance(node, ast.JoinedStr) or (
        isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)))


class Frame:
    """An expression's source wrapped in parentheses, so any expression (or expression list)
    parses; the wrapping parentheses are not counted."""

    def __init__(self, text: str):
        self.source = "(" + text + "\n)"
        starts, pos = [], 0
        for line in self.source.split("\n"):
            starts.append(pos)
            pos += len(line) + 1
        self.starts = starts
        self.lines = self.source.split("\n")

    def offset(self, lineno: int, col: int, utf8: bool = True) -> int:
        line = self.lines[lineno - 1]
        if utf8:
            col = len(line.encode("utf-8")[:col].decode("utf-8", "replace"))
        return self.starts[lineno - 1] + col

    def start(self, node: ast.AST) -> int:
        return self.offset(node.lineno, node.col_offset)

    def end(self, node: ast.AST) -> int:
        return self.offset(node.end_lineno, node.end_col_offset)


def expression_nodes(text: str) -> int:
    """Nodes of the tree-sitter trees of an expression (or comma-separated expressions)."""
    frame = Frame(text)
    body = ast.parse(frame.source, mode="eval").body
    strings, inner, nodes = [], 0, []
    todo = [body]
    while todo:
        node = todo.pop()
        if is_string(node):
            strings.append((frame.start(node), frame.end(node)))
            continue
        nodes.append(node)
        todo.extend(ast.iter_child_nodes(node))

    strings.sort()
    string_starts = [a for a, _ in strings]
    tokens = []  # (offset, token) outside strings, without the frame's parentheses
    for tok in tokenize.generate_tokens(io.StringIO(frame.source).readline):
        if tok.type in SKIPPED:
            continue
        at = frame.offset(*tok.start, utf8=False)
        k = bisect.bisect_right(string_starts, at) - 1
        if k >= 0 and at < strings[k][1]:
            continue
        tokens.append((at, tok))
    tokens = tokens[1:-1]

    # a line continuation outside strings and comments is a node, unless a string follows it
    # (the scanner skips it while looking for the string's start)
    masked = list(frame.source)
    comments = [(at, at + len(t.string)) for at, t in tokens if t.type == tokenize.COMMENT]
    for a, b in strings + comments:
        masked[a:b] = " " * (b - a)
    starts = set(string_starts)
    continuations = sum(1 for m in CONTINUATION.finditer("".join(masked))
                        if next_token(frame.source, m.end()) not in starts)

    # pairs of parentheses: each belongs to a call, a generator or a tuple, or is a
    # parenthesized_expression of its own
    opens = [at for at, t in tokens if t.type == tokenize.OP and t.string == "("]
    close_of, stack = {}, []
    for at, t in tokens:
        if t.type == tokenize.OP and t.string in "([{":
            stack.append(at)
        elif t.type == tokenize.OP and t.string in ")]}" and stack:
            close_of[stack.pop()] = at
    owned = set()
    for node in nodes:
        inner += inner_nodes(node, frame)
        if isinstance(node, ast.Call):  # the first `(` after the called expression
            k = bisect.bisect_left(opens, frame.end(node.func))
            owned.add(opens[k] if k < len(opens) else -1)
        elif isinstance(node, ast.GeneratorExp) or (isinstance(node, ast.Tuple)
                                                     and has_parens(node, frame, close_of)):
            owned.add(frame.start(node))
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Tuple) \
                and not has_parens(node.slice, frame, close_of):
            inner -= 1  # tree-sitter has no node for `a[1, 2]`'s tuple
    parenthesized = sum(1 for at in opens if at not in owned)
    text_nodes = sum(string_nodes(frame.source[a:b]) for a, b in strings)
    return len(tokens) + continuations + inner + parenthesized + text_nodes


def next_token(source: str, i: int) -> int:
    """Where the next token starts, past blanks and line continuations."""
    while True:
        while i < len(source) and source[i] in " \t\f":
            i += 1
        m = CONTINUATION.match(source, i)
        if not m:
            return i
        i = m.end()


def has_parens(node: ast.Tuple, frame: Frame, close_of: dict) -> bool:
    start = frame.start(node)
    return frame.source[start] == "(" and close_of.get(start) == frame.end(node) - 1


def shares_parens(call: ast.Call, frame: Frame) -> bool:
    """`f(x for x in y)`: the generator's parentheses are the call's (no argument_list)."""
    return (len(call.args) == 1 and not call.keywords and isinstance(call.args[0], ast.GeneratorExp)
            and frame.end(call.args[0]) == frame.end(call))


def inner_nodes(node: ast.AST, frame: Frame) -> int:
    """Tree-sitter's inner nodes for one AST node (its leaves are tokens)."""
    if isinstance(node, LEAVES):
        return 0
    if isinstance(node, ast.Call):
        return 1 if shares_parens(node, frame) else 2  # call, argument_list
    if isinstance(node, ast.Dict):
        return 1 + len(node.keys)  # a pair per item, a dictionary_splat per **d
    if isinstance(node, ast.DictComp):
        return 2  # dictionary_comprehension, pair
    if isinstance(node, ast.comprehension):
        return 1 + len(node.ifs)  # for_in_clause, if_clause per if
    if isinstance(node, ast.BoolOp):
        return len(node.values) - 1  # nested binary boolean_operator nodes
    if isinstance(node, ast.arguments):  # a lambda's
        params = [*node.posonlyargs, *node.args, *node.kwonlyargs, node.vararg, node.kwarg]
        if not any(params):
            return 0
        defaults = len(node.defaults) + sum(d is not None for d in node.kw_defaults)
        separators = bool(node.posonlyargs) + bool(node.kwonlyargs and not node.vararg)
        splats = (node.vararg is not None) + (node.kwarg is not None)
        # lambda_parameters, default_parameter, positional/keyword_separator, *a and **kw
        return 1 + defaults + separators + splats
    if isinstance(node, ast.arg):  # an identifier (a token); *a and **kw counted above
        return 0
    return 1


def string_nodes(text: str) -> int:
    """Nodes of a string literal, or of implicitly concatenated ones (with the comments between
    them)."""
    pieces, extras, i = [], 0, 0
    while i < len(text):
        c = text[i]
        if c in " \t\f\r\n":
            i += 1
        elif c == "#":
            extras += 1  # a comment
            j = text.find("\n", i)
            i = len(text) if j < 0 else j
        elif c == "\\":  # a line continuation before a string: no node
            i = CONTINUATION.match(text, i).end()
        else:
            n, i = one_string(text, i)
            pieces.append(n)
    return sum(pieces) + extras + (len(pieces) > 1)


def one_string(text: str, i: int) -> tuple[int, int]:
    """(nodes, end) of the string literal starting at `text[i]`, scanned as tree-sitter-python's
    external scanner and lexer do."""
    flags = set()
    while text[i] in PREFIX:
        flags.add(text[i].lower())
        i += 1
    quote = text[i]
    triple = text[i:i + 3] == quote * 3
    i += 3 if triple else 1
    fmt, raw, data = "f" in flags, "r" in flags, "b" in flags
    nodes, in_content = 3, False  # string, string_start, string_end

    def content(extra: int = 0) -> None:
        nonlocal nodes, in_content
        nodes += extra + (not in_content)
        in_content = True

    while True:
        c = text[i]
        if fmt and c in "{}":
            if text[i + 1] == c:
                content(1)  # escape_interpolation
                i += 2
                continue
            n, i = interpolation(text, i)
            nodes += n
            in_content = False
            continue
        kind, end = scan_content(text, i, quote, triple, fmt, raw, data)
        if kind == "content":
            content()
            i = end
        elif kind == "end":
            return nodes, end
        else:  # the lexer's turn: a backslash
            m = ESCAPE.match(text, i)
            content(1 if m else 0)
            i = m.end() if m else i + 1


def scan_content(text, i, quote, triple, fmt, raw, data):
    """One call of the external scanner inside a string: ("content" | "end" | None, end)."""
    has_content = False
    while i < len(text):
        c = text[i]
        if fmt and c in "{}":
            return ("content" if has_content else None), i
        if c == "\\":
            if raw:
                i += 1
                if i < len(text) and text[i] in (quote, "\\"):
                    i += 1
                if text.startswith("\r\n", i):
                    i += 2
                elif i < len(text) and text[i] in "\r\n":
                    i += 1
                continue
            if data:
                mark = i
                i += 1
                if i < len(text) and text[i] in "NuU":
                    i += 1
                else:
                    return ("content" if has_content else None), mark
            else:
                return ("content" if has_content else None), i
        elif c == quote:
            if triple:
                if text[i:i + 3] == quote * 3:
                    return ("content", i) if has_content else ("end", i + 3)
                return "content", i + (2 if text[i:i + 2] == quote * 2 else 1)
            return ("content", i) if has_content else ("end", i + 1)
        i += 1
        has_content = True
    raise ValueError("unterminated string")


def interpolation(text: str, i: int) -> tuple[int, int]:
    """(nodes, end) of the `{...}` at `text[i]`: interpolation, `{`, the expression, `=`,
    type_conversion, format_specifier (`:` and its format_expression nodes), `}`."""
    end = expression_end(text, i + 1)
    nodes = 2 + expression_nodes(text[i + 1:end])
    i = end
    if text[i] == "=":
        nodes += 1
        i += 1
        while text[i] in " \t\r\n":
            i += 1
    if text[i] == "!":
        nodes += 1
        i += 2
    if text[i] == ":":
        nodes += 2
        i += 1
        while text[i] != "}":
            if text[i] == "{":
                n, i = interpolation(text, i)
                nodes += n
            else:
                i += 1
    return nodes + 1, i + 1


def expression_end(text: str, i: int) -> int:
    """Where the expression of an interpolation ends: at `}`, `:`, `!` (not `!=`) or a
    self-documenting `=`, outside brackets and strings."""
    depth = 0
    while True:
        c = text[i]
        if c in QUOTES:
            _, i = one_string(text, i)
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0:
                return i
            depth -= 1
        elif depth == 0 and c == ":":
            return i
        elif depth == 0 and c == "!" and text[i + 1] != "=":
            return i
        elif depth == 0 and c == "=" and text[i + 1] != "=" and text[i - 1] not in "=!<>":
            return i
        i += 1
