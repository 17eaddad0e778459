"""Extraction: top-level functions only, stable ids, sha1, and the `context` a function needs."""

import ast
import hashlib

from multiplt.corpus.extract import BOM, MAX_DEPTH, depth, extract, sha1, source_lines
from multiplt.corpus.sources import Document
from tests.unit.corpus.helpers import nested_calls, row_of, rows_of


def test_only_top_level_functions_are_extracted_with_decorators_and_async():
    rows = rows_of('''
        import functools

        class K:
            def method(self):
                """m"""
                return 1

        def outer(x):
            """o"""
            def nested(y):
                """n"""
                return y
            return nested(x)

        @functools.lru_cache(maxsize=None)
        def cached(n):
            """c"""
            return n * 2

        async def later(x):
            """a"""
            return x
    ''')
    assert [r["entrypoint"] for r in rows] == ["outer", "cached", "later"]
    assert rows[1]["content"].startswith("@functools.lru_cache(maxsize=None)\ndef cached(n):")
    assert rows[1]["context"] == "import functools\n"
    assert "def nested" in rows[0]["content"]


def test_id_names_origin_line_and_function_and_sha1_is_of_content():
    row = row_of('''
        x = 1

        def f(a):
            """d"""
            return a + x
    ''')
    assert row["id"] == "m.py:4:f" and row["line"] == 4 and row["path"] == "m.py"
    assert row["sha1"] == hashlib.sha1(row["content"].encode()).hexdigest()
    assert row["content"] == 'def f(a):\n    """d"""\n    return a + x\n'


def test_context_holds_imports_and_module_names_the_function_uses_transitively():
    row = rows_of('''
        from __future__ import annotations
        import os
        import re
        from collections import Counter as C
        UNUSED = 3
        PATTERN = re.compile(r"\\w+")
        def helper(s):
            return PATTERN.findall(s)
        def count(text):
            """Counts words."""
            return C(helper(text))
    ''')[-1]
    assert row["context"] == ('from __future__ import annotations\nimport re\n'
                              'from collections import Counter as C\nPATTERN = re.compile(r"\\w+")\n'
                              'def helper(s):\n    return PATTERN.findall(s)\n')
    assert "os" not in row["context"] and "UNUSED" not in row["context"]


def test_imports_inside_try_count_as_bindings():
    row = row_of('''
        try:
            import json
        except ImportError:
            json = None
        def dump(x):
            """d"""
            return json.dumps(x)
    ''')
    assert row["context"].startswith("try:\n    import json\n")


def test_non_utf8_and_unparsable_documents_become_one_syntax_error_row():
    rows, (bad,) = extract(Document("bad.py", b"def f(:\n  pass\n", {"path": "bad.py"}))
    assert rows == [] and bad["reason"] == "syntax_error" and "SyntaxError" in bad["detail"]
    rows, (bad,) = extract(Document("l1.py", "x = 'café'\n".encode("latin-1"), {"path": "l1.py"}))
    assert rows == [] and bad["reason"] == "syntax_error" and bad["detail"].startswith("not UTF-8")


def test_context_leaves_out_module_names_the_function_binds_itself():
    row = row_of('''
        import json
        import sys

        data = json.load(open(sys.argv[1]))


        def total_price(data):
            """Sum the price field of every item in data."""
            total = 0
            for item in data:
                total += item["price"]
            return total
    ''')
    assert row["context"] == ""


def test_context_resolves_names_through_nested_scopes_and_helpers():
    rows = rows_of('''
        x = 1
        y = 2
        z = 3
        w = 4
        item = 5
        acc = 6
        LIMIT = 10
        SCALE = 2
        COUNT = 0
        def helper(x):
            return x * SCALE
        def f(y):
            """Nested scopes: their own names are not the module's."""
            global COUNT
            def inner(z):
                return z + y + LIMIT
            square = lambda w: w * w
            items = [item for item in range(y)]
            class Box:
                acc = 1
                def get(self):
                    return acc
            COUNT += 1
            return helper(inner(square(len(items)))) + Box().get() + COUNT
    ''')
    # helper's parameter x and the names f and its nested scopes bind (y, z, w, item) are not
    # the module's; `acc` in Box.get is (a method does not see its class's names), and so is the
    # declared global COUNT
    assert rows[-1]["context"] == ("acc = 6\nLIMIT = 10\nSCALE = 2\nCOUNT = 0\n"
                                   "def helper(x):\n    return x * SCALE\n")
    shadowed = rows_of('''
        import math
        acc = math.pi
        LIMIT = 10
        def g(acc):
            """A parameter shadows the module name in every nested scope that does not rebind it."""
            def inner():
                return [acc for _ in range(LIMIT)]
            return inner()
    ''')[-1]
    assert shadowed["context"] == "LIMIT = 10\n"


def test_line_breaks_are_the_parsers_not_splitlines():
    # a form feed line (PEP 8's page break) and \\x0b, \\x1c, \\x85, \\u2028 inside strings are no
    # line breaks to Python's parser; \\r and \\r\\n are
    text = ('import os\n\x0c\n'
            'def first(x):\n    """Doc first."""\n    return x + 1 + 2 + 3\n\n'
            'def second(path):\n    """Doc \x0b\x1c\x85\u2028 second."""\n'
            '    return os.path.join(path, "a", "b")\r\n'
            'def third(y):\r    """Doc third."""\r    return y * 2 + 1\r')
    rows, excluded = extract(Document("ff.py", text.encode(), {"path": "ff.py"}))
    assert excluded == [] and [r["entrypoint"] for r in rows] == ["first", "second", "third"]
    assert rows[0]["content"] == 'def first(x):\n    """Doc first."""\n    return x + 1 + 2 + 3\n'
    assert rows[1]["content"] == ('def second(path):\n    """Doc \x0b\x1c\x85\u2028 second."""\n'
                                  '    return os.path.join(path, "a", "b")\n')
    assert rows[1]["context"] == "import os\n"
    assert rows[2]["content"] == 'def third(y):\n    """Doc third."""\n    return y * 2 + 1\n'
    assert source_lines("a\x0cb\u2028c\r\nd\re\nf") == ["a\x0cb\u2028c", "d", "e", "f"]


def test_a_byte_order_mark_is_dropped_as_python_drops_it():
    source = 'def f(x):\n    """Doubles."""\n    return x * 2 + 3\n'
    for data in ((BOM + source).encode("utf-8"), BOM + source):
        rows, excluded = extract(Document("bom.py", data, {"path": "bom.py"}))
        assert excluded == [] and rows[0]["entrypoint"] == "f" and rows[0]["content"] == source


def test_text_with_a_lone_surrogate_is_not_utf8():
    # valid JSON ("Smile \\ud83d.") gives a str that UTF-8 cannot hold: the row is a syntax_error
    text = 'def f(x):\n    """Smile \ud83d."""\n    y = x * 2\n    return y + 1\n'
    rows, (bad,) = extract(Document("t.jsonl#0", text, {"path": "t.jsonl", "row": "0"}))
    assert rows == [] and bad["reason"] == "syntax_error"
    assert bad["detail"].startswith("not UTF-8") and "surrogates not allowed" in bad["detail"]
    assert bad["content"] == "" and bad["sha1"] == hashlib.sha1(b"").hexdigest()
    assert sha1("\ud83d") == hashlib.sha1("\ud83d".encode("utf-8", "surrogatepass")).hexdigest()


def test_a_function_nested_too_deeply_is_excluded_as_too_deep():
    deep = 'def big(x):\n    """Concatenates."""\n    return "a"' + ' + "b"' * 250 + "\n"
    fine = 'def small(x):\n    """Doubles."""\n    return x * 2 + 1\n'
    rows, (dropped,) = extract(Document("d.py", (deep + fine).encode(), {"path": "d.py"}))
    assert [r["entrypoint"] for r in rows] == ["small"]
    assert dropped["id"] == "d.py:1:big" and dropped["reason"] == "too_deep"
    assert dropped["content"] == deep and "_node" not in dropped
    levels = depth(ast.parse(deep).body[0])
    assert levels > MAX_DEPTH
    assert dropped["detail"] == f"syntax tree {levels} levels deep (more than {MAX_DEPTH})"
    at_limit, over = nested_calls(MAX_DEPTH - 4), nested_calls(MAX_DEPTH - 3)
    assert depth(ast.parse(at_limit).body[0]) == MAX_DEPTH
    assert extract(Document("g.py", at_limit.encode(), {"path": "g.py"}))[1] == []
    assert extract(Document("g.py", over.encode(), {"path": "g.py"}))[1][0]["reason"] == "too_deep"


def test_a_main_guard_block_is_never_context():
    # names bound only under `if __name__ == "__main__":` do not exist when the module is
    # imported; a context holding the block would run the script's main code (here: sys.exit)
    # in type checking and test generation
    rows = rows_of('''
        import re

        if __name__ == "__main__":
            import sys
            LIMIT = int(sys.argv[1])
            sys.exit(main())

        if "__main__" == __name__:
            WIDTH = 3

        def clip(s):
            """Clip s."""
            return re.sub("x", "", s)[:LIMIT + WIDTH]
    ''')
    assert rows[-1]["context"] == "import re\n"


def test_an_if_with_else_on_name_still_binds():
    row = row_of('''
        if __name__ == "__main__":
            SEP = ","
        else:
            SEP = ";"

        def join(xs):
            """Join xs."""
            return SEP.join(xs)
    ''')
    assert row["context"].startswith('if __name__ == "__main__":')
