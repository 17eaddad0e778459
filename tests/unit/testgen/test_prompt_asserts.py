"""The test prompt and the assert parser (pure functions, no sandbox)."""

from __future__ import annotations

import warnings

import pytest

from multiplt.errors import MultipltError
from multiplt.testgen import asserts, prompt

FN = 'def add(a, b):\n    """Add."""\n    return a + b\n'


def test_prompt_is_function_three_comments_tests_and_open_assert():
    text = prompt.build(FN, "add")
    assert text == (FN.rstrip("\n") + "\n\n# Unit tests for add\n"
                    "# Every test is strictly of the form: assert add(...) == ...\n"
                    "# Keyword arguments are not allowed in the calls\nassert add(")


def test_known_tests_are_shuffled_the_same_way_for_the_same_function():
    known = [f"assert add({i}, 0) == {i}" for i in range(8)]
    a = prompt.build(FN, "add", known, "sha-a")
    assert a == prompt.build(FN, "add", known, "sha-a")
    body = a.split("# Keyword arguments are not allowed in the calls\n")[1].split("\n")[:-1]
    assert sorted(body) == sorted(known) and body != known
    others = {prompt.build(FN, "add", known, f"sha-{i}") for i in range(5)}
    assert len(others) > 1


def test_known_tests_of_a_row_are_a_list_of_strings():
    row = {"sha1": "ab" * 20, "id": "m.py:1:add", "content": FN, "entrypoint": "add"}
    known = ["assert add(1, 2) == 3", "assert add(0, 0) == 0"]
    with_tests = prompt.generation_row({**row, "tests": known})["prompt"]
    assert sorted(with_tests.split("\n")[-3:-1]) == sorted(known)
    assert prompt.generation_row({**row, "tests": None})["prompt"] == prompt.build(FN, "add")
    assert prompt.generation_row(row)["prompt"] == prompt.build(FN, "add")
    # a string would otherwise become one "test" per character
    for bad, why in [("assert add(1, 2) == 3", "tests is a str, not a list of strings"),
                     (["assert add(1, 2) == 3", None], "tests holds a NoneType, not only strings"),
                     ({"t": 1}, "tests is a dict")]:
        with pytest.raises(MultipltError, match=rf"function {row['sha1']} \(m.py:1:add\): {why}"):
            prompt.generation_row({**row, "tests": bad})


def test_completion_continues_the_open_assert():
    assert prompt.completion_text("add", "1, 2) == 3") == "assert add(1, 2) == 3"


def _parse(*completions):
    return asserts.parse([prompt.completion_text("add", c) for c in completions], "add")


def test_keeps_positional_equality_asserts_in_normal_form():
    parsed = _parse("1,2)==3\nassert add(\n    [1,\n     2], 3) == [4]\n")
    assert parsed.asserts == ["assert add(1, 2) == 3", "assert add([1, 2], 3) == [4]"]
    assert parsed.counts == {"kept": 2}


def test_rejects_keyword_arguments_and_other_shapes():
    parsed = _parse("a=1, b=2) == 3\nassert add(1, b=2) == 3\nassert add() == 0\n"
                    "assert add(*xs) == 1\nassert add(1, 2) != 4\nassert add(1, 2) == 3, 'msg'\n"
                    "assert sub(1, 2) == -1\nassert add(1, 2) < 4\nx = add(1, 2)\nassert add(**kw) == 1\n")
    assert parsed.asserts == []
    assert parsed.counts == {"keyword_argument": 2, "not_entrypoint_assert": 8}


def test_garbage_is_skipped_and_counted_and_later_asserts_still_found():
    parsed = _parse("1, 2) == 3\nthis is not python (\nassert add(2, 2) == 4\nassert add(3, ",
                    "")
    assert parsed.asserts == ["assert add(1, 2) == 3", "assert add(2, 2) == 4"]
    # the garbage line, the cut-off last line, and the second sample's lone `assert add(`
    assert parsed.counts["unparsable"] == 3
    assert _parse("").counts == {"unparsable": 1}  # `assert add(` alone


def test_deduplicated_across_samples_first_seen_first():
    parsed = _parse("2, 2) == 4\nassert add(1, 1) == 2", "1,1) == 2\nassert add(5, 5) == 10")
    assert parsed.asserts == ["assert add(2, 2) == 4", "assert add(1, 1) == 2",
                              "assert add(5, 5) == 10"]
    assert parsed.counts["duplicate"] == 1


def test_the_models_text_raises_no_syntax_warnings():
    """Text like `(9ins` makes Python's parser warn (invalid decimal literal) before it fails;
    parsing a model's samples must not print such warnings (once per window of lines tried)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parsed = _parse("1, 2) == 3\nsst.(9ins\nassert add(2, 2) == 4")
    assert parsed.asserts == ["assert add(1, 2) == 3", "assert add(2, 2) == 4"]
    assert parsed.counts["unparsable"] == 1
    assert not [w for w in caught if issubclass(w.category, SyntaxWarning)]
