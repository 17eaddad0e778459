"""Each cheap filter on hand-written cases: what it keeps, what it drops and with which reason."""

import pytest

from multiplt.corpus import filters
from tests.unit.corpus.helpers import verdict

BODY = "    y = x + 1\n    return y * y\n"


@pytest.mark.parametrize("source, reason", [
    (f'async def f(x):\n    """d"""\n{BODY}', "async_function"),
    (f'@decorator\nasync def f(x):\n    """d"""\n{BODY}', "async_function"),
    (f'def f(x):\n    """d"""\n{BODY}', None),
    # only the function itself counts: an async helper nested in a plain def is its business
    (f'def f(x):\n    """d"""\n    async def g():\n        return 1\n{BODY}', None),
])
def test_async(source, reason):
    assert verdict(filters.AsyncFilter(), source) == reason


def test_async_functions_are_dropped_first_by_the_cheapest_check():
    """An `async def` returns a coroutine (no `assert f(x) == v` passes; translate refuses it):
    it is dropped before any other block looks at it."""
    from multiplt.corpus import REASONS, decontam
    from multiplt.corpus.config import CorpusConfig
    from multiplt.corpus.shard import row_blocks

    blocks = row_blocks(CorpusConfig(source="s", out="o"), decontam.Benchmarks())
    assert (blocks[0].name, blocks[0].reason) == ("async_def", "async_function")
    assert REASONS.index("async_function") == REASONS.index("too_deep") + 1


@pytest.mark.parametrize("body, reason", [
    ("    yield x + 1\n    return x\n", "generator_function"),
    ("    for i in x:\n        if i:\n            yield i\n    return x\n", "generator_function"),
    ("    return (yield x)\n", "generator_function"),
    ("    yield from range(x)\n    return x\n", "generator_function"),
    (BODY, None),
    # only the function's own body counts: nested functions, lambdas and classes are their own
    ("    def g():\n        yield 1\n    return list(g())\n", None),
    ("    g = lambda: (yield)\n    return g\n", None),
    ("    class C:\n        def it(self):\n            yield 1\n    return C\n", None),
    ("    s = 'yield x'  # yield\n    return s\n", None),
    ("    return [y for y in x]\n", None),
])
def test_generator(body, reason):
    assert verdict(filters.GeneratorFilter(), f'def yields(x):\n    """Counts."""\n{body}') == reason


def test_generator_functions_are_dropped_right_after_async_ones():
    """A generator function returns a generator: dropped with its own reason, counted in the
    funnel, before the docstring check (and kept out of the fingerprint's older steps)."""
    from multiplt.corpus import REASONS, decontam
    from multiplt.corpus.config import CorpusConfig
    from multiplt.corpus.shard import ShardReader, row_blocks
    from multiplt.corpus.sources import Document

    blocks = row_blocks(CorpusConfig(source="s", out="o"), decontam.Benchmarks())
    assert (blocks[1].name, blocks[1].reason) == ("generator", "generator_function")
    assert REASONS.index("generator_function") == REASONS.index("async_function") + 1
    reader = ShardReader(CorpusConfig(source="s", out="o", typecheck=False), decontam.Benchmarks())
    source = (f'def kept(x):\n    """Squares x plus one."""\n{BODY}\n\n'
              'def yields(x):\n    """Counts up from x."""\n    yield x + 1\n    return x\n')
    reader.document(Document("g.py", source.encode(), {"path": "g.py"}))
    assert [row["id"] for row in reader.rows] == ["g.py:1:kept"]
    assert [(row["id"], row["reason"], row["detail"]) for row in reader.excluded] == [
        ("g.py:7:yields", "generator_function", "`yield` on line 9: calling it returns a generator")]
    assert [(s["name"], s["reason"], s["in"], s["out"]) for s in reader.steps()[1:4]] == [
        ("async_def", "async_function", 2, 2), ("generator", "generator_function", 2, 1),
        ("docstring", "no_docstring", 1, 1)]


@pytest.mark.parametrize("docstring, reason", [
    ('"""triple double"""', None),
    ("'''triple single'''", None),
    ('r"""raw \\d"""', None),
    ('u"""unicode prefix"""', None),
    ('"one quote"', "no_docstring"),
    ("'one quote'", "no_docstring"),
    ('b"""bytes"""', "no_docstring"),
    ("# a comment", "no_docstring"),
])
def test_docstring(docstring, reason):
    assert verdict(filters.DocstringFilter(), f"def f(x):\n    {docstring}\n{BODY}") == reason


def test_a_string_after_the_first_statement_is_no_docstring():
    assert verdict(filters.DocstringFilter(), 'def f(x):\n    y = 1\n    """late"""\n    return y\n') == "no_docstring"


@pytest.mark.parametrize("body, reason", [
    ("    return x\n", None),
    ("    if x:\n        return\n    return None\n", None),  # `return None` is an expression
    ("    print(x)\n", "no_return_value"),
    ("    if x:\n        return\n    print(x)\n", "no_return_value"),
    ("    def g():\n        return 1\n    g()\n", "no_return_value"),  # the nested function's
    ("    f2 = lambda: 1\n    print(f2)\n", "no_return_value"),
    ("    for i in x:\n        while i:\n            return i\n", None),
])
def test_return_value(body, reason):
    assert verdict(filters.ReturnFilter(), f'def f(x):\n    """d"""\n{body}') == reason


def test_ascii_and_todo():
    assert verdict(filters.AsciiFilter(), f'def f(x):\n    """d"""\n{BODY}') is None
    assert verdict(filters.AsciiFilter(), f'def f(x):\n    """d – é"""\n{BODY}') == "non_ascii"
    assert verdict(filters.TodoFilter(), f'def f(x):\n    """d"""\n{BODY}') is None
    assert verdict(filters.TodoFilter(), f'def f(x):\n    """d"""\n    # TODO\n{BODY}') == "todo"
    assert verdict(filters.TodoFilter(), f'def f(x):\n    """todo later, lower case"""\n{BODY}') is None


@pytest.mark.parametrize("body, reason", [
    ("    return a + b\n", "too_short"),
    ("    return len(a)\n", "too_short"),
    ("    return max(a, b)\n", None),  # 10 nodes (tree-sitter's; test_tree_size has more)
    ("    c = a + b\n    return c\n", None),  # more than one statement
    ("    raise ValueError(a)\n", None),  # not a return (the return filter's business)
])
def test_too_short(body, reason):
    assert verdict(filters.TooShortFilter(9), f'def f(a, b):\n    """d"""\n{body}') == reason
