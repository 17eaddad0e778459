"""Validation rules of version 2 (config.VALIDATION): an exit while an assert runs fails it, the
function's own `# pragma: no cover` hides nothing, an assert that changes shared state does not
void the coverage run (and a failed run names its cause), expected values and arguments are
literals, and parts saved under other rules are validated again."""

from __future__ import annotations

import ast
import json
import os

import pytest

from multiplt.testgen import asserts, config, execute
from multiplt.testgen.validate import Check, coverage_path, run_checks
from tests.unit.testgen import test_runner

FN = test_runner.FN
sandbox = test_runner.sandbox  # the fixture: one warm sandbox for this module


def _run(sandbox, asserts_, prefix=FN, entry="add"):
    check = Check("k", prefix, entry, asserts_)
    run_checks(sandbox, [check], timeout=2.0, cov_path=coverage_path())
    return check


def test_an_assert_or_a_function_that_exits_zero_fails(sandbox):
    check = _run(sandbox, ["assert add(1, 2) == 3",
                           "assert add(5, 0) == __import__('sys').exit(0)",
                           "assert add(7, 0) == exit()",
                           "assert add(3, 0) == __import__('os')._exit(0)",
                           "assert add(9, 0) == 99 or __import__('sys').exit(0)"])
    assert check.statuses == ["OK", "SystemExit", "SystemExit", "exit 0", "SystemExit"]
    safe_div = ('import sys\n\n\ndef safe_div(a, b):\n    """Divide."""\n    if b == 0:\n'
                '        sys.exit(0)\n    return a // b\n')
    check = _run(sandbox, ["assert safe_div(6, 3) == 2", "assert safe_div(1, 0) == 42"],
                 prefix=safe_div, entry="safe_div")
    assert check.statuses == ["OK", "SystemExit"]
    assert check.coverage["missing"] == [7]  # sys.exit(0): no passing test reaches it


def test_the_functions_own_pragma_no_cover_hides_no_statement(sandbox):
    pick = FN.replace("if a > 100:", "if a > 100:  # pragma: no cover")
    check = _run(sandbox, ["assert add(1, 2) == 3"], prefix=pick)
    assert check.coverage["statements"] == [1, 3, 4, 5] and check.coverage["missing"] == [4]


def test_an_assert_that_replaces_a_builtin_does_not_void_the_coverage_run(sandbox):
    length = 'def length(xs):\n    """Length."""\n    return len(xs)\n'
    check = _run(sandbox, ["assert length((setattr(__import__('builtins'), 'len', lambda x: 99),"
                           " [1])[1]) == 99", "assert length([1, 2]) == 2"],
                 prefix=length, entry="length")
    assert check.statuses == ["OK", "OK"]
    assert check.coverage["statements"] == [1, 3] and check.coverage["missing"] == []


BREAK_REPORT = "assert add(200, 1) == (setattr(__import__('json'), 'dump', None) or 0)"


def test_a_failed_shared_coverage_run_falls_back_to_each_assert_alone(sandbox):
    check = _run(sandbox, ["assert add(1, 2) == 3", BREAK_REPORT])
    assert check.statuses == ["OK", "OK"]
    # the breaking assert's own run fails too: its line (return 0) is not counted, it is an error
    assert check.coverage["missing"] == [4] and check.coverage["errors"] == 1
    assert check.coverage["signatures"] == [[[["int"], ["int"]], ["int"], []]]


def test_a_failed_coverage_run_names_its_cause(sandbox):
    check = _run(sandbox, [BREAK_REPORT])
    assert check.coverage == {"error": "exit 70: TypeError: 'NoneType' object is not callable"}
    check = _run(sandbox, ["assert add(1, 2) == (setattr(__import__('json'), 'dump', None) or 3)",
                           BREAK_REPORT])
    assert check.coverage == {"error": "exit 70: TypeError: 'NoneType' object is not callable; "
                                       "alone, each assert's coverage run failed too"}


@pytest.mark.parametrize("text, reason", [
    ("assert sign(-3) == sign(-3)", "expected_not_literal"),
    ("assert sign(0) == __import__('unittest.mock').mock.ANY", "expected_not_literal"),
    ("assert sign(1) == 1 + 0", "expected_not_literal"),
    ("assert sign(float('inf')) == 1", "argument_not_literal"),
    ("assert sign(sign(2)) == 1", "argument_not_literal"),
    ("assert sign(-3) == -1", None),
    ("assert sign([1, (2, 'x')], {1: None}) == {1.5, -2}", None),
])
def test_arguments_and_expected_values_must_be_literals(text, reason):
    assert asserts.classify(ast.parse(text).body[0], "sign") == reason


def test_rejected_non_literal_asserts_are_counted():
    parsed = asserts.parse(["assert sign(-3) == sign(-3)\nassert sign(5) == 1\nassert sign(0) == "
                            "__import__('unittest.mock').mock.ANY\nassert sign(abs(-2)) == 1\n"],
                           "sign")
    assert parsed.asserts == ["assert sign(5) == 1"]
    assert parsed.counts == {"kept": 1, "expected_not_literal": 2, "argument_not_literal": 1}


def test_a_part_saved_under_other_rules_is_validated_again(tmp_path):
    folder = tmp_path / "checks"
    folder.mkdir()
    exits = Check("f", "def f(x):\n    return x\n", "f", ["assert f(1) == exit()"])
    # a part of version 1 (no version recorded) said this assert passed (exit status 0)
    (folder / "part-00000-1-aaaaaa.json").write_text(json.dumps(
        {"f": {"asserts": exits.asserts, "statuses": ["OK"],
               "coverage": {"statements": [1, 2], "missing": [], "signatures": [], "errors": 0}}}))
    summary = execute.run_all([exits], str(folder), workers=1, timeout=10)
    assert summary["functions_run"] == 1 and exits.statuses == ["SystemExit"]
    again = Check("f", exits.prefix, "f", exits.asserts)
    assert execute.run_all([again], str(folder), workers=1, timeout=10)["functions_reused"] == 1
    assert again.statuses == ["SystemExit"]
    assert [json.loads(p.read_text())["f"].get("validation") for p in sorted(folder.iterdir())] \
        == [None, config.VALIDATION]


def test_the_config_records_the_validation_rules():
    cfg = config.TestgenConfig(functions="fn", out=os.path.join("x", "out"))
    assert cfg.as_dict()["validation"] == config.VALIDATION == 4


def test_a_shard_of_older_validation_rules_is_refused_not_mixed(tmp_path):
    """A shard whose config.json was written under older rules (no `validation` recorded) is
    refused with one line naming the rules, so its saved verdicts never mix with new ones."""
    from multiplt.errors import MultipltError
    from multiplt.testgen import pipeline

    cfg = config.TestgenConfig(functions="fn", out=str(tmp_path / "out"))
    work = tmp_path / "work"
    work.mkdir()
    old = {k: v for k, v in cfg.as_dict().items() if k != "validation"}
    (work / "config.json").write_text(json.dumps(old))
    with pytest.raises(MultipltError, match="validation: not recorded there, 4 now"):
        pipeline._check_same_run(cfg, str(work))
    (work / "config.json").write_text(json.dumps(cfg.as_dict()))
    pipeline._check_same_run(cfg, str(work))
