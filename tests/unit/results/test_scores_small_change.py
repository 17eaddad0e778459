"""A status changed after `multiplt score` moves the estimate however little: one Timeout of
2000 results that passes when run again under a longer limit moves pass@1 by 0.05% (relative),
and `results record` still finds the scores file out of date. Only float rounding (relative
1e-9) counts as the same estimate."""

from __future__ import annotations

from multiplt.evaluation import passk
from tests.unit.results.test_scores_current import one_line_error, record, write_run

N = 1000
BEFORE = {"HumanEval_0_a": ["OK"] * (N - 1) + ["Timeout"], "HumanEval_1_b": ["OK"] * N}
AFTER = {"HumanEval_0_a": ["OK"] * N, "HumanEval_1_b": ["OK"] * N}


def test_one_timeout_of_two_thousand_passing_since_scoring_is_out_of_date(tmp_path, capsys):
    store = tmp_path / "results.parquet"
    run = write_run(tmp_path / "run", N, BEFORE)
    (row,) = passk.score(run)
    assert row["Estimate"] == (0.999 + 1.0) / 2
    write_run(tmp_path / "run", N, AFTER)  # the Timeout, run again, passed
    code, err = record(capsys, run, store)
    assert code == 2 and not store.exists()
    line = one_line_error(err)
    assert f"{run}: its _scores.csv is out of date: pass@1 0.9995 over 2 problem(s) with " \
           f"{N}..{N} results there, 1.0 over 2 problem(s) with {N}..{N} results from its " \
           "results files now" in line
    passk.score(run)
    assert record(capsys, run, store)[0] == 0
