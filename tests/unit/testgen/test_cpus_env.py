"""testgen's validation runs as many programs at once as MULTIPLT_CPUS allows without --workers
(execution.executor.default_workers): a value that is no positive integer is one error, exit 2,
when the settings are checked, before anything is sampled or written, in the stages that
validate (`all`, `validate`); a stage that does not validate, and a run given --workers, do not
read it."""

import pytest

from multiplt import cli
from tests.unit.testgen.test_out_folder import FIXTURE, functions


def run_testgen(fn, out, *extra):
    return cli.main(["testgen", "--functions", fn, "--out", str(out), "--backend", "replay",
                     "--replay-source", str(FIXTURE / "replay.jsonl"), "--n", "2", *extra])


@pytest.mark.parametrize("stage", ["all", "validate"])
def test_a_bad_budget_is_refused_before_anything_is_sampled(tmp_path, monkeypatch, capsys, stage):
    monkeypatch.setenv("MULTIPLT_CPUS", "lots")
    out = tmp_path / "out"
    assert run_testgen(functions(tmp_path), out, "--stage", stage) == 2
    assert capsys.readouterr().err == ("multiplt testgen: error: MULTIPLT_CPUS must be a positive "
                                       "integer (the CPUs to use), got 'lots'\n")
    assert not out.exists()


def test_a_stage_that_does_not_validate_or_given_workers_does_not_read_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MULTIPLT_CPUS", "lots")
    fn = functions(tmp_path)
    assert run_testgen(fn, tmp_path / "a", "--stage", "generate") == 0
    assert run_testgen(fn, tmp_path / "a", "--stage", "validate", "--workers", "1") == 0
