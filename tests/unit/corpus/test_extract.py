"""Extraction: top-level functions only, stable ids, sha1, and the `context` a function needs."""

import hashlib

from multiplt.corpus.extract import extract
from multiplt.corpus.sources import Document
from tests.unit.corpus.helpers import row_of, rows_of


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
    rows, bad = extract(Document("bad.py", b"def f(:\n  pass\n", {"path": "bad.py"}))
    assert rows == [] and bad["reason"] == "syntax_error" and "SyntaxError" in bad["detail"]
    rows, bad = extract(Document("l1.py", "x = 'café'\n".encode("latin-1"), {"path": "l1.py"}))
    assert rows == [] and bad["reason"] == "syntax_error" and bad["detail"].startswith("not UTF-8")
