"""One list of what a funnel dropped (multiplt.log.drop_reasons) for the warnings of a corpus build and
a testgen run that kept no function."""

import logging

from multiplt.corpus import merge
from multiplt.log import drop_reasons
from multiplt.testgen import pipeline as testgen_pipeline


def test_drops_are_named_by_reason_else_step_most_first():
    steps = [{"name": "input", "in": 9, "out": 9},
             {"name": "docstring", "reason": "no_docstring", "in": 9, "out": 6},
             {"name": "b_step", "in": 6, "out": 3},
             {"name": "a_step", "in": 3, "out": 0}]
    assert drop_reasons(steps) == ["a_step 3", "b_step 3", "no_docstring 3"]
    assert drop_reasons([{"name": "input", "in": 2, "out": 2}]) == []


def test_a_corpus_build_that_kept_nothing_names_its_drops(caplog, tmp_path):
    funnel = {"files": {"read": 3, "syntax_error": 1},
              "steps": [{"name": "extracted", "reason": "too_deep", "in": 5, "out": 4},
                        {"name": "docstring", "reason": "no_docstring", "in": 4, "out": 0}]}
    with caplog.at_level(logging.WARNING):
        merge._warn_if_empty(funnel, str(tmp_path))
    assert caplog.messages == [
        f"corpus kept 0 of 5 functions, from 3 documents read (syntax_error 1 (documents that do not parse), "
        f"no_docstring 4, too_deep 1): {tmp_path}/functions holds no row; {tmp_path}/excluded gives each "
        "dropped row's reason"]


def test_a_testgen_run_that_kept_nothing_names_its_drops(caplog, tmp_path):
    totals = {"steps": [{"name": "input", "in": 4, "out": 4}, {"name": "no_asserts", "in": 4, "out": 1},
                        {"name": "coverage", "in": 1, "out": 0}],
              "asserts": {"kept": 0, "not_an_assert": 2, "empty": 0}}
    with caplog.at_level(logging.WARNING):
        testgen_pipeline._warn_if_empty(totals, str(tmp_path))
    assert caplog.messages == [
        f"testgen kept 0 of 4 functions (no_asserts 3; coverage 1; assert lines of the completions: "
        f"not_an_assert 2): {tmp_path}/tests holds no row; {tmp_path}/excluded gives each function's reason"]
    caplog.clear()
    testgen_pipeline._warn_if_empty({**totals, "steps": totals["steps"][:1] + [
        {"name": "coverage", "in": 4, "out": 0}]}, str(tmp_path))  # no assert missing: no lines named
    assert caplog.messages == [f"testgen kept 0 of 4 functions (coverage 4): {tmp_path}/tests holds no row; "
                               f"{tmp_path}/excluded gives each function's reason"]
