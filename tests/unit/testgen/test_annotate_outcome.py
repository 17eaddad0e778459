"""Types from recorded calls (content_with_types) and the coverage arithmetic."""

from __future__ import annotations

from multiplt.testgen import annotate, outcome
from multiplt.testgen.validate import Check

INT, STR, FLOAT, NONE = ["int"], ["str"], ["float"], ["none"]


def sig(args, result):
    return [args, result, []]


def test_ints_and_floats_meet_at_float_and_annotations_are_inserted():
    content = 'def add(a, b=2):\n    """Add."""\n    return a + b\n'
    text, why = annotate.annotate(content, "add", [sig([INT, INT], INT), sig([FLOAT, INT], FLOAT)])
    assert why is None
    assert text == 'def add(a: float, b: int=2) -> float:\n    """Add."""\n    return a + b\n'


def test_containers_optional_and_typing_import():
    content = "def first(xs):\n    return xs[0] if xs else None\n"
    text, why = annotate.annotate(content, "first", [sig([["list", [INT]]], INT),
                                                     sig([["list", []]], NONE)])
    assert text == ("from typing import List, Optional\n\n"
                    "def first(xs: List[int]) -> Optional[int]:\n    return xs[0] if xs else None\n")
    tup = [["tuple", [INT, STR]]]
    text, _ = annotate.annotate("def f(p, d):\n    return d\n", "f",
                                [sig([tup[0], ["dict", [STR], [FLOAT, INT]]], ["dict", [STR], [FLOAT]])])
    assert text.splitlines()[2] == "def f(p: Tuple[int, str], d: Dict[str, float]) -> Dict[str, float]:"


def test_an_existing_annotation_is_kept_and_its_bare_parts_filled():
    text, _ = annotate.annotate("def f(xs: list, n: int) -> list:\n    return xs * n\n", "f",
                                [sig([["list", [STR]], INT], ["list", [STR]])])
    assert "def f(xs: List[str], n: int) -> List[str]:" in text


def test_no_types_with_the_reason():
    cases = [
        ("def f(x):\n    return x\n", [sig([INT], INT), sig([STR], STR)],
         "parameter x is a Union (Union[int, str])"),
        ("def f(x):\n    return x\n", [sig([["other", "set"]], ["other", "set"])],
         "a value of type set was seen"),
        ("def f(x):\n    return x\n", [sig([["list", []]], ["list", []])],
         "parameter x has an unknown part (only empty containers were seen)"),
        ("def f(*x):\n    return x\n", [sig([INT], INT)],
         "the function takes *args, **kwargs or keyword-only parameters"),
        ("def f(x):\n    print(x)\n", [sig([INT], NONE)], "the function always returned None"),
        ("def f(x):\n    return x\n", [], "no call of the function was recorded"),
    ]
    for content, sigs, reason in cases:
        assert annotate.annotate(content, "f", sigs) == (None, reason)


def test_a_parameter_no_test_passed_gets_a_reason_saying_so():
    """The runner records the types of positional arguments only: a parameter no call passed
    positionally has the type of its default, or none, and the reason says which case it is
    (not "only empty containers were seen")."""
    call = sig([INT], INT)
    cases = [
        ("def f(x, key=lambda v: v):", [call],
         "no test passed parameter key, and its default (lambda v: v) is not a literal"),
        ("def f(x, key=DEFAULT):", [call], "no test passed parameter key, and its default (DEFAULT) is not a literal"),
        ("def f(x, key={1}):", [call], "no test passed parameter key, and its default ({1}) is (or holds) a "
                                       "value of unsupported type set"),
        ("def f(x, key=None):", [call], "no test passed parameter key, and its default (None) is None"),
        ("def f(x, key=[]):", [call], "no test passed parameter key, and its default ([]) has an unknown part "
                                      "(only empty containers were seen)"),
        ("def f(x, key=[1, 'a']):", [call], "no test passed parameter key, and its default ([1, 'a']) is a Union "
                                            "(Union[int, str])"),
        ("def f(x, key=lambda v: v):", [[[INT], INT, ["key"]]],
         "parameter key was passed only by keyword, whose values are not recorded"),
        ("def f(x, key):", [call], "no test passed parameter key"),
        ("def f(x, key=" + repr("y" * 50) + "):", [sig([INT, ["other", "set"]], INT)],
         "a value of type set was seen"),  # passed: the value's own reason
    ]
    for head, sigs, reason in cases:
        assert annotate.annotate(head + "\n    return x\n", "f", sigs) == (None, reason), head
    # a default that is a literal gives the type when no test passes the parameter
    text, why = annotate.annotate("def f(x, key=3):\n    return x\n", "f", [call])
    assert why is None and text.startswith("def f(x: int, key: int=3) -> int:")
    text, why = annotate.annotate("def f(x, key: int = DEFAULT):\n    return x\n", "f", [call])
    assert why is None and text.startswith("def f(x: int, key: int = DEFAULT) -> int:")
    long = "def f(x, key=lambda v: " + " + ".join(["v"] * 30) + "):"
    assert annotate.annotate(long + "\n    return x\n", "f", [call])[1] == (
        "no test passed parameter key, and its default (lambda v: v + v + v + v + v + v + v +...) "
        "is not a literal")


def test_multiline_signature_gets_its_return_annotation_after_the_closing_paren():
    content = "def f(a,\n      b):  # (comment)\n    return a\n"
    text, _ = annotate.annotate(content, "f", [sig([INT, STR], INT)])
    assert text == "def f(a: int,\n      b: str) -> int:  # (comment)\n    return a\n"


def test_coverage_counts_only_the_function_body_rounded_down():
    program = outcome.prefix("import re\nX = 1", "def f(x):\n    if x:\n        return 1\n    return 2\n")
    assert program.startswith("import re\nX = 1\n\n\ndef f(x):")
    span = outcome.body_lines(program, "f")
    assert span == (6, 8)
    record = {"statements": [1, 2, 5, 6, 7, 8], "missing": [2, 8]}  # line 2 is outside
    assert outcome.coverage_percent(record, span) == 66


def test_decide_reasons_in_order():
    row = {"content": "def f(x):\n    return x\n", "entrypoint": "f", "context": ""}
    assert outcome.decide(row, None, 90)["reason"] == "no_asserts"
    failed = Check("k", row["content"], "f", ["assert f(1) == 2"], ["AssertionError"])
    assert outcome.decide(row, failed, 90)["reason"] == "no_passing_test"
    broken = Check("k", row["content"], "f", ["assert f(1) == 1"], ["OK"], {"error": "timeout"})
    assert outcome.decide(row, broken, 90)["reason"] == "coverage_error"
    low = Check("k", row["content"], "f", ["assert f(1) == 1"], ["OK"],
                {"statements": [1, 2], "missing": [2], "signatures": []})
    result = outcome.decide(row, low, 90)
    assert (result["reason"], result["coverage"]) == ("low_coverage", 0)
    assert outcome.decide(row, low, 0)["reason"] is None


MALFORMED = [
    ({"statements": 5, "missing": []}, "statements is not a list"),
    ([1], "not an object"),
    ({"statements": [1, 2], "missing": [True]}, "missing is not a list"),
    ({"statements": [1], "missing": [2]}, "missing lines that are not statements"),
    ({"statements": [1, 2, 9], "missing": []}, "statements on lines that hold none"),
    ({"statements": [1, 2], "missing": [], "signatures": [[[[]], ["int"], []]]}, "type-tree"),
    ({"statements": [1, 2], "missing": [], "signatures": [[[["list", 1]], ["int"], []]]},
     "type-tree"),
    ({"statements": [1, 2], "missing": [], "signatures": [[[["int"]], ["int"]]]}, "type-tree"),
    ({"statements": [1, 2], "missing": [], "signatures": [], "errors": "x"}, "errors"),
    ({"error": 3}, "error is not a string"),
]


def test_a_malformed_coverage_record_saved_earlier_is_that_functions_coverage_error():
    """A coverage record is written by code the measured program can reach (a forged one was
    saved by earlier versions): any shape but the runner's is a coverage_error, never a crash."""
    row = {"content": "def f(x):\n    return x\n", "entrypoint": "f", "context": ""}
    for record, why in MALFORMED:
        check = Check("k", row["content"], "f", ["assert f(1) == 1"], ["OK"], record)
        result = outcome.decide(row, check, 0)
        assert result["reason"] == "coverage_error", record
        assert result["detail"].startswith("malformed coverage report: ") and why in result["detail"]
    good = {"statements": [1, 2], "missing": [], "errors": 0,
            "signatures": [[[["dict", [STR], [["list", [["tuple", [INT, ["other", "set"]]]]]]]],
                            ["vtuple", [NONE, FLOAT]], ["k"]]]}
    result = outcome.decide(row, Check("k", row["content"], "f", ["assert f(1) == 1"], ["OK"], good), 0)
    assert result["reason"] is None and result["coverage"] == 100


def test_statement_lines_hold_every_line_coverage_reports():
    from multiplt.testgen.validate import statement_lines

    program = ("import functools\n\n@functools.lru_cache(\n    maxsize=None)\ndef f(a,\n      b=2):\n"
               "    try:\n        y = [i\n             for i in range(a)]\n    except (ValueError,\n"
               "            TypeError):\n        pass\n    match a:\n        case 1:\n"
               "            return 1\n    return (a,\n            b)\n")
    assert statement_lines(program) == {1, 3, 5, 7, 8, 10, 12, 13, 14, 15, 16}
