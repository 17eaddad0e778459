"""Problems built from step-1 rows (issue 15, point 2): the prompt is the canonical Python body
as a comment, then the docstring, then the signature; Julia and OCaml take their types from
content_with_types or are skipped with a reason; tests are translated by the language layer and
untranslatable ones dropped with reasons; a problem with no translatable test is dropped."""

import pytest

from multiplt import languages
from multiplt.languages import get
from multiplt.translation.problems import (CANONICAL_HEADER, build_problem, parse_tests,
                                           split_function)
from tests.fixtures import translate as fx

ADD_ONE, COUNT, SHOUT, SET_SIZE = fx.ROWS


def row(base, **changes):
    return {**base, **changes}


# Per target language of the registry (a fast test checks the keys): add_one's signature in its
# prompt, and the first of its tests as the language layer translates it.
SIGNATURES = {"rkt": "(define (add_one xs)", "jl": "function add_one(xs::Vector{Int64})::Vector{Int64}",
              "r": "add_one <- function(xs) {", "ml": "let add_one (xs : int list) : int list =",
              "lua": "local function add_one(xs)"}
FIRST_TEST = {
    "rkt": "(check-within (candidate (list 1 2)) (list 2 3) 0.001)",
    "lua": "lu.assertEquals(candidate({1, 2}), {2, 3})",
    "r": "stopifnot(isTRUE(all.equal(candidate(c(1, 2)), c(2, 3))))",
    "ml": "assert ((candidate [1; 2]) = [2; 3]);",
    "jl": "@test(candidate([1, 2]) == [2, 3])",
}


@pytest.mark.parametrize("code", languages.targets())
def test_prompt_is_canonical_comment_then_docstring_then_signature(code):
    assert code in SIGNATURES, f"no expected signature for {code}"
    built = build_problem(ADD_ONE, get(code))
    assert built.reason is None
    prompt = built.row["prompt"]
    header = prompt.index(CANONICAL_HEADER)
    body = prompt.index("# return [x + 1 for x in xs]")
    doc = prompt.index("Add one to every element of a")
    signature = SIGNATURES[code]
    assert header < body < doc < prompt.index(signature)
    assert prompt.rstrip().endswith(signature.rstrip())
    # the clean prompt is the same prompt without the canonical block
    assert CANONICAL_HEADER not in built.row["clean_prompt"]
    assert built.row["clean_prompt"].rstrip().endswith(signature.rstrip())
    assert built.row["name"] == ADD_ONE["sha1"] and built.row["language"] == code
    assert built.row["translated_tests"] == 3


def test_comment_markers_are_the_languages():
    rkt = build_problem(ADD_ONE, get("rkt")).row["prompt"]
    assert f";; {CANONICAL_HEADER}\n;; # return [x + 1 for x in xs]\n" in rkt
    lua = build_problem(ADD_ONE, get("lua")).row["prompt"]
    assert f"-- {CANONICAL_HEADER}\n-- # return [x + 1 for x in xs]\n" in lua
    # docstring doctests are translated, as MultiPL-E's --doctests transform
    assert ";; >>> (add_one (list 1 2))\n;; (list 2 3)\n" in rkt


@pytest.mark.parametrize("code", languages.targets())
def test_tests_are_translated_by_the_language_layer(code):
    assert code in FIRST_TEST, f"no expected test for {code}"
    built = build_problem(ADD_ONE, get(code)).row
    tests = built["tests"]
    assert FIRST_TEST[code] in tests
    lines = [line for line in tests.split("\n")
             if "candidate" in line and "add_one" not in line and "multiplt" not in line]
    assert len(lines) == 3
    # the language layer's test file, sealed with the problem's own nonce (translate only)
    assert tests == get(code).seal_tests(get(code).render_test_file("add_one", lines), built["tests_nonce"])


@pytest.mark.parametrize("code", [code for code in languages.targets() if get(code).strict_types])
def test_typed_languages_skip_rows_without_types(code):
    built = build_problem(SHOUT, get(code))
    assert built.row is None
    assert built.drop == "no inferred types"
    assert "content_with_types" in built.reason


def test_typed_languages_skip_partly_annotated_functions():
    partial = row(ADD_ONE, content_with_types=fx.ADD_ONE.replace("def add_one(xs):",
                                                                  "def add_one(xs: List[int]):"))
    built = build_problem(partial, get("ml"))
    assert built.row is None and built.drop == "untyped signature"
    assert "return value" in built.reason


def test_ocaml_rejects_a_union_with_a_reason():
    union = row(COUNT, content_with_types=fx.COUNT.replace("def count_vowels(s):",
                                                            "def count_vowels(s: Union[str, int]) -> int:"))
    built = build_problem(union, get("ml"))
    assert built.row is None and built.drop == "types not expressible"
    assert built.reason == "signature (s: Union[str, int]) -> int: OCaml has no type for Union[str, int]"
    # Julia can write it
    assert "function count_vowels(s::Union{String, Int64})::Int64" in build_problem(union, get("jl")).row["prompt"]


def test_untyped_languages_use_the_untyped_content():
    built = build_problem(SHOUT, get("rkt"))
    assert built.row is not None
    assert '(check-within (candidate "hi") "HI!" 0.001)' in built.row["tests"]


def test_no_translatable_test_drops_the_problem_with_reasons():
    built = build_problem(SET_SIZE, get("lua"))
    assert built.row is None and built.drop == "no test translates"
    assert [d["reason"] for d in built.dropped_tests] == [
        "a value is not a supported literal (value of unsupported type set)"] * 2


def test_parse_tests_reasons():
    tests = ["assert f(1) == 2", "assert f(1) == 2", "assert f(2) == 3", "assert f(2) == 4",
             "assert f(x=1) == 2", "assert f(y) == 1", "assert g(1) == 1", "f(1)", "assert f(3) ==",
             "assert f(-3) == -2"]
    sites, cases, drops = parse_tests(tests, "f")
    assert len(sites) == len(tests)
    assert sorted(cases) == [0, 9]
    assert cases[9][0].args == (-3,) and cases[9][0].expected == -2
    assert drops[1] == "duplicate of test 0"
    assert drops[2] == drops[3] == "conflicting tests: the same call expects different values"
    assert drops[4].startswith(("asserts a property", "checks a property"))  # keyword argument
    assert drops[5].startswith("a value is not a supported literal")
    assert drops[6].startswith("checks a property")  # another function
    assert drops[7] == "not a single assert statement"
    assert drops[8] == "the test does not parse"


def test_some_untranslatable_tests_are_skipped_not_the_problem():
    mixed = row(ADD_ONE, tests=ADD_ONE["tests"] + ["assert add_one([1]) == {2}"])
    built = build_problem(mixed, get("rkt"))
    assert built.row is not None and built.row["translated_tests"] == 3
    assert built.dropped_tests[0]["test"] == "assert add_one([1]) == {2}"


def test_split_function_errors_and_body():
    prompt, body = split_function(fx.COUNT, "count_vowels")
    assert prompt.startswith("def count_vowels(s):") and body.startswith("n = 0\nfor c in s:")
    with pytest.raises(ValueError, match="docstring"):
        split_function("def f(x):\n    return x\n", "f")
    with pytest.raises(ValueError, match="no top-level function"):
        split_function(fx.COUNT, "other")
    with pytest.raises(ValueError, match="does not parse"):
        split_function("def f(:\n", "f")
    bad = build_problem(row(COUNT, content="def count_vowels(s):\n    return 1\n"), get("lua"))
    assert bad.row is None and bad.drop == "unsupported function"


@pytest.mark.parametrize("odd", ["\x0c", "\x0b", "\u2028", "\u2029", "\x85", "\x1c", "\x1d", "\x1e"])
def test_split_function_counts_lines_as_ast_does(odd):
    """ast numbers lines at \\r\\n, \\r and \\n only: a form feed or U+2028 (in strings, and a
    form feed on a line of its own) must not shift the body's slice."""
    source = (f'X = "a{odd}b"\n\ndef f(s):\n    """Doc{odd}string."""\n    t = "{odd}"\n'
              f'\x0c\n    return s + t\n\ndef g():\n    """G."""\n    return 1\n')
    prompt, body = split_function(source, "f")
    assert body == f't = "{odd}"\n\nreturn s + t'  # the form-feed line is blank, as to Python
    assert prompt.startswith("def f(s):")
    # old Mac and Windows line ends count as ast counts them
    cr = source.replace("\n", "\r").replace("\x0c\r", "\x0c\r\n")
    assert split_function(cr, "f")[1] == body
