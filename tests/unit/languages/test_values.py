"""Issue 3 point 3: every literal HumanEval uses renders correctly in every language."""

import pytest

from multiplt import languages
from multiplt.languages.base import Unsupported
from multiplt.languages.types import (BOOL, FLOAT, INT, STR, Dict, List, Optional, PyType, Tuple,
                                      parse)

TRICKY = 'say "hi" \\ back\nnew $x'

# (case, value, type, {language: rendering})
CASES = [
    ("negative int", -3, INT,
     {"py": "-3", "rkt": "-3", "jl": "-3", "r": "-3", "ml": "(-3)", "lua": "-3"}),
    ("negative float", -2.5, FLOAT,
     {"py": "-2.5", "rkt": "-2.5", "jl": "-2.5", "r": "-2.5", "ml": "(-2.5)", "lua": "-2.5"}),
    ("int in a float slot", 3, FLOAT,
     {"py": "3.0", "rkt": "3.0", "jl": "3.0", "r": "3.0", "ml": "3.0", "lua": "3.0"}),
    ("small float", 1e-05, FLOAT,
     {"py": "1e-05", "rkt": "1e-05", "jl": "1e-05", "r": "1e-05", "ml": "1e-05", "lua": "1e-05"}),
    ("half", .5, FLOAT,
     {"py": "0.5", "rkt": "0.5", "jl": "0.5", "r": "0.5", "ml": "0.5", "lua": "0.5"}),
    ("large float", 1e20, FLOAT,
     {"py": "1e+20", "rkt": "1e+20", "jl": "1e+20", "r": "1e+20", "ml": "1e+20", "lua": "1e+20"}),
    ("big int", 123456789012, INT,
     {"py": "123456789012", "rkt": "123456789012", "jl": "123456789012", "r": "123456789012",
      "ml": "123456789012", "lua": "123456789012"}),
    ("string escapes", TRICKY, STR,
     {"py": repr(TRICKY), "rkt": '"say \\"hi\\" \\\\ back\\nnew $x"',
      "jl": '"say \\"hi\\" \\\\ back\\nnew \\$x"', "r": '"say \\"hi\\" \\\\ back\\nnew $x"',
      "ml": '"say \\"hi\\" \\\\ back\\nnew $x"', "lua": '"say \\"hi\\" \\\\ back\\nnew $x"'}),
    ("bools", [True, False], List(BOOL),
     {"py": "[True, False]", "rkt": "(list #t #f)", "jl": "[true, false]", "r": "c(TRUE, FALSE)",
      "ml": "[true; false]", "lua": "{true, false}"}),
    ("None as Optional", None, Optional(INT),
     {"py": "None", "rkt": "#f", "jl": "nothing", "r": "NULL", "ml": "None", "lua": "nil"}),
    ("Some value", 5, Optional(INT),
     {"py": "5", "rkt": "5", "jl": "5", "r": "5", "ml": "(Some 5)", "lua": "5"}),
    ("empty int list", [], List(INT),
     {"py": "[]", "rkt": "(list)", "jl": "Vector{Int64}([])", "r": "c()", "ml": "[]", "lua": "{}"}),
    ("empty float list", [], List(FLOAT),
     {"py": "[]", "rkt": "(list)", "jl": "Vector{Float64}([])", "r": "c()", "ml": "[]", "lua": "{}"}),
    ("float list with ints", [1, 2.5], List(FLOAT),
     {"py": "[1.0, 2.5]", "rkt": "(list 1.0 2.5)", "jl": "[1.0, 2.5]", "r": "c(1.0, 2.5)",
      "ml": "[1.0; 2.5]", "lua": "{1.0, 2.5}"}),
    ("tuple", (1, "a"), Tuple(INT, STR),
     {"py": "(1, 'a')", "rkt": '(list 1 "a")', "jl": '(1, "a")', "r": 'list(1, "a")',
      "ml": '(1, "a")', "lua": '{1, "a"}'}),
    ("int tuple", (2, -1), Tuple(INT, INT),
     {"py": "(2, -1)", "rkt": "(list 2 -1)", "jl": "(2, -1)", "r": "c(2, -1)", "ml": "(2, (-1))",
      "lua": "{2, -1}"}),
    ("dict", {"a": 1, "b": 2}, Dict(STR, INT),
     {"py": "{'a': 1, 'b': 2}", "rkt": '#hash(("a" . 1) ("b" . 2))',
      "jl": 'Dict{String, Int64}("a" => 1, "b" => 2)', "r": 'list("a" = 1, "b" = 2)',
      "ml": '[("a", 1); ("b", 2)]', "lua": '{["a"] = 1, ["b"] = 2}'}),
    ("empty dict", {}, Dict(STR, INT),
     {"py": "{}", "rkt": "#hash()", "jl": "Dict{String, Int64}()", "r": "list()", "ml": "[]",
      "lua": "{}"}),
    ("nested lists", [[1, 2], []], List(List(INT)),
     {"py": "[[1, 2], []]", "rkt": "(list (list 1 2) (list))",
      "jl": "Vector{Int64}[[1, 2], Vector{Int64}([])]", "r": "list(c(1, 2), c())",
      "ml": "[[1; 2]; []]", "lua": "{{1, 2}, {}}"}),
    ("list of tuples", [(1, 2)], List(Tuple(INT, INT)),
     {"py": "[(1, 2)]", "rkt": "(list (list 1 2))", "jl": "Tuple{Int64, Int64}[(1, 2)]",
      "r": "list(c(1, 2))", "ml": "[(1, 2)]", "lua": "{{1, 2}}"}),
    ("list of optionals", [None, 3], List(Optional(INT)),
     {"py": "[None, 3]", "rkt": "(list #f 3)", "jl": "Union{Int64, Nothing}[nothing, 3]",
      "r": "list(NULL, 3)", "ml": "[None; (Some 3)]", "lua": "{nil, 3}"}),
]


@pytest.mark.parametrize("code", languages.names())
@pytest.mark.parametrize("case,value,typ,expected", CASES, ids=[c[0] for c in CASES])
def test_value_rendering(code, case, value, typ, expected):
    assert code in expected, f"{case}: no expected rendering for {code}"
    assert languages.get(code).value(value, typ) == expected[code]


@pytest.mark.parametrize("code,expected", [
    ("jl", "Tuple{Vector{Int64}, Union{String, Nothing}, Dict{String, Float64}}"),
    ("ml", "int list * string option * (string * float) list")])
def test_type_rendering(code, expected):
    t = parse("Tuple[List[int], Optional[str], Dict[str, float]]")
    assert languages.get(code).render_type(t) == expected


def test_ocaml_tuple_lists_are_parenthesized():
    assert languages.get("ml").render_type(parse("List[Tuple[int, int]]")) == "(int * int) list"


STRICT = [code for code in languages.names() if languages.get(code).strict_types]


@pytest.mark.parametrize("code", STRICT)
def test_typed_languages_refuse_values_that_do_not_fit(code):
    with pytest.raises(Unsupported):
        languages.get(code).value({5: "x"}, Dict(STR, STR))


@pytest.mark.parametrize("code", [code for code in languages.names() if code not in STRICT])
def test_untyped_languages_render_values_by_their_own_type(code):
    assert "5" in languages.get(code).value({5: "x"}, Dict(STR, STR))


def test_union_values_use_the_matching_member():
    jl = languages.get("jl")
    t = parse("Union[int, float, str]")
    assert [jl.value(v, t) for v in (3, 2.5, "x")] == ["3", "2.5", '"x"']
    assert languages.get("ml").render_type(PyType("list", (INT,))) == "int list"


def test_r_optional_elements_that_hold_values_make_an_atomic_vector():
    """Issue 12 point 6: as MultiPL-E, HumanEval 136's `(-2, 1)` (a Tuple[Optional[int], ...])
    is `c(-2, 1)`; only an actual NULL makes the container a list."""
    r, pair = languages.get("r"), Tuple(Optional(INT), Optional(INT))
    assert r.value((-2, 1), pair) == "c(-2, 1)"
    assert r.value((None, 1), pair) == "list(NULL, 1)"
    assert r.value([1, 2], List(Optional(INT))) == "c(1, 2)"
    assert r.value([1, None], List(Optional(INT))) == "list(1, NULL)"
