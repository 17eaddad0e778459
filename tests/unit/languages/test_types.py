"""Python types: parsing annotations, typing values, unifying what the tests show."""

import pytest

from multiplt.languages.types import (ANY, BOOL, FLOAT, INT, NONE, STR, UNKNOWN, Dict, List,
                                      Optional, PyType, Tuple, conforms, of_value, parse, refine,
                                      unify, unify_all)


@pytest.mark.parametrize("text,expected", [
    ("List[float]", List(FLOAT)), ("list", List(UNKNOWN)), ("Optional[str]", Optional(STR)),
    ("str | None", Optional(STR)), ("Tuple[int, int]", Tuple(INT, INT)),
    ("Tuple[str, ...]", PyType("vtuple", (STR,))), ("Dict[str, int]", Dict(STR, INT)),
    ("typing.List[int]", List(INT)), ("Any", ANY), ("Union[int, str]", PyType("union", (INT, STR)))])
def test_parse(text, expected):
    assert parse(text) == expected


def test_parse_rejects_unknown_names():
    with pytest.raises(ValueError, match="unsupported type name 'Widget'"):
        parse("List[Widget]")


def test_values_unify_like_the_tests_use_them():
    assert of_value([1, 2.5]) == List(FLOAT)
    assert unify_all(map(of_value, [[], [1]])) == List(INT)
    assert unify(of_value(None), STR) == Optional(STR)
    assert unify(of_value(("a", "b")), of_value(())) == PyType("vtuple", (STR,))
    assert unify(INT, STR) == PyType("union", (INT, STR))
    assert unify(BOOL, NONE) == Optional(BOOL)


def test_refine_fills_bare_annotations_only():
    assert refine(parse("list"), List(INT)) == List(INT)
    assert refine(parse("List[float]"), List(INT)) == List(FLOAT)  # the annotation wins
    assert refine(None, Dict(STR, INT)) == Dict(STR, INT)


def test_conforms():
    assert conforms(3, FLOAT) and not conforms(True, INT) and not conforms(3.5, INT)
    assert conforms([None, 1], List(Optional(INT)))
    assert not conforms({5: "x"}, Dict(STR, STR))
