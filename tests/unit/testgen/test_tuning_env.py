"""testgen's validation knobs MULTIPLT_TESTGEN_BATCH_ASSERTS (asserts per sandboxed program, a
positive integer) and MULTIPLT_TESTGEN_SAVE_EVERY_S (seconds between saves, 0 or more): a value
that is neither is one error naming the variable, exit 2, before the validation runs or writes
anything (it was a ValueError traceback when the module was imported, mid-run)."""

import pytest

from multiplt import cli
from multiplt.testgen import execute
from tests.unit.testgen.test_out_folder import FIXTURE, functions


def run_testgen(fn, out, *extra):
    return cli.main(["testgen", "--functions", fn, "--out", str(out), "--backend", "replay",
                     "--replay-source", str(FIXTURE / "replay.jsonl"), "--n", "2", "--workers",
                     "1", *extra])


@pytest.mark.parametrize("name, value, rule", [
    ("MULTIPLT_TESTGEN_BATCH_ASSERTS", "lots", "a positive integer (asserts per sandboxed program)"),
    ("MULTIPLT_TESTGEN_BATCH_ASSERTS", "0", "a positive integer (asserts per sandboxed program)"),
    ("MULTIPLT_TESTGEN_SAVE_EVERY_S", "often", "a number of seconds, 0 or more (how often finished "
                                               "functions are saved)"),
    ("MULTIPLT_TESTGEN_SAVE_EVERY_S", "-1", "a number of seconds, 0 or more (how often finished "
                                            "functions are saved)"),
    ("MULTIPLT_TESTGEN_SAVE_EVERY_S", "nan", "a number of seconds, 0 or more (how often finished "
                                             "functions are saved)")])
def test_a_bad_knob_is_one_error_before_the_validation_runs(tmp_path, monkeypatch, capsys, name,
                                                           value, rule):
    fn, out = functions(tmp_path), tmp_path / "out"
    assert run_testgen(fn, out, "--stage", "generate") == 0
    capsys.readouterr()
    monkeypatch.setenv(name, value)
    assert run_testgen(fn, out, "--stage", "validate") == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == f"multiplt testgen: error: {name} must be {rule}, got {value!r}"
    assert "Traceback" not in err and err.count("error") == 1
    assert not list(out.rglob("checks")) and not list(out.rglob("outcomes.jsonl"))


def test_the_knobs_as_set_or_their_defaults(monkeypatch):
    for name in (execute.BATCH_ASSERTS_ENV, execute.SAVE_EVERY_ENV):
        monkeypatch.delenv(name, raising=False)
    assert execute.tuning() == (96, 10.0)
    monkeypatch.setenv(execute.BATCH_ASSERTS_ENV, " 3 ")
    monkeypatch.setenv(execute.SAVE_EVERY_ENV, "0")
    assert execute.tuning() == (3, 0.0)
    monkeypatch.setenv(execute.BATCH_ASSERTS_ENV, "")  # empty: unset
    assert execute.tuning() == (96, 0.0)


def test_a_bad_knob_is_refused_before_the_sampling_of_a_whole_run(tmp_path, monkeypatch, capsys):
    """`--stage all` (the default) checks the knobs with the other settings, before it samples."""
    fn, out = functions(tmp_path), tmp_path / "out"
    monkeypatch.setenv("MULTIPLT_TESTGEN_BATCH_ASSERTS", "lots")
    assert run_testgen(fn, out) == 2
    err = capsys.readouterr().err
    assert err.endswith("multiplt testgen: error: MULTIPLT_TESTGEN_BATCH_ASSERTS must be a positive "
                        "integer (asserts per sandboxed program), got 'lots'\n")
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))
