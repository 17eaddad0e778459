"""`results record` records only scores that cover the folder as `multiplt score` judges it now:
a folder that grew after it was scored (a later `generate --n 8` whose execute was cut or never
ran) is not a complete run, and a folder whose results changed after `score` (the execute
finished, Timeouts ran again) holds an out-of-date scores file. Run folders hand-made here: the
results files are written as execute writes them, the scores by `multiplt score` itself."""

from __future__ import annotations

import gzip
import json
import pathlib

import yaml

from multiplt import cli
from multiplt.evaluation import passk
from multiplt.results import read_store

PROBLEMS = ("HumanEval_0_a", "HumanEval_1_b")


def write_run(folder: pathlib.Path, n: int, statuses: dict[str, list[str]]) -> str:
    """A run folder of `n` completions per problem, with the results `statuses` gives (fewer:
    not all executed), and its run record."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in PROBLEMS:
        doc = {"name": name, "language": "lua", "prompt": "p\n", "tests": "t\n",
               "completions": [f"c{i}" for i in range(n)]}
        results = [{"program": f"p\nc{i}\nt\n", "stdout": "", "stderr": "", "status": s,
                    "exit_code": 0 if s == "OK" else 1, "timestamp": 1}
                   for i, s in enumerate(statuses[name])]
        (folder / f"{name}.json.gz").write_bytes(gzip.compress(json.dumps(doc).encode()))
        (folder / f"{name}.results.json.gz").write_bytes(
            gzip.compress(json.dumps({**doc, "results": results}).encode()))
    (folder / "_multiplt_run.yaml").write_text(yaml.safe_dump(
        {"model": "m", "lang": "lua", "n": n, "complete": True, "problems": list(PROBLEMS)}))
    return str(folder)


def record(capsys, run: str, store: pathlib.Path, *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    code = cli.main(["results", "record", "--scores", run, "--store", str(store), *extra])
    return code, capsys.readouterr().err


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("multiplt results: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


FOUR = {"HumanEval_0_a": ["OK", "OK", "AssertionError", "OK"],
        "HumanEval_1_b": ["AssertionError"] * 4}
EIGHT = {"HumanEval_0_a": FOUR["HumanEval_0_a"] * 2, "HumanEval_1_b": ["AssertionError"] * 7 + ["OK"]}


def test_scores_left_from_before_the_folder_grew_are_refused(tmp_path, capsys):
    """Scored at n=4, then generate --n 8 added samples and its execute never ran: score refuses
    the folder, so record does too (it recorded n=8 with the 4-sample pass@1)."""
    store = tmp_path / "results.parquet"
    run = write_run(tmp_path / "run", 4, FOUR)
    passk.score(run)
    write_run(tmp_path / "run", 8, FOUR)  # the completions grew; the results did not
    code, err = record(capsys, run, store)
    assert code == 2 and not store.exists()
    line = one_line_error(err)
    assert f"{run} is not a complete run: 2 problem(s) have fewer results than completions" in line
    assert "HumanEval_0_a (4 of 8)" in line and f"`multiplt score --in {run}`" in line
    assert line.endswith("nothing recorded")


def test_scores_of_results_that_changed_since_are_out_of_date(tmp_path, capsys):
    """The execute then ran the new samples, but score did not run again: the scores file says
    4 results per problem, the folder holds 8. Scored again, the run is recorded."""
    store = tmp_path / "results.parquet"
    run = write_run(tmp_path / "run", 4, FOUR)
    passk.score(run)
    write_run(tmp_path / "run", 8, EIGHT)
    code, err = record(capsys, run, store)
    assert code == 2 and not store.exists()
    line = one_line_error(err)
    assert f"{run}: its _scores.csv is out of date: pass@1 0.375 over 2 problem(s) with 4..4 " \
           "results there, 0.4375 over 2 problem(s) with 8..8 results from its results files now" in line
    assert f"run `multiplt score --in {run}` again; nothing recorded" in line
    passk.score(run)
    assert record(capsys, run, store)[0] == 0
    row = read_store(str(store)).row(0, named=True)
    assert (row["n"], row["min_completions"], row["estimate"]) == (8, 8, 0.4375)


def test_a_status_changed_since_scoring_is_out_of_date(tmp_path, capsys):
    """As many results as when scored, one of them another (a Timeout run again under a longer
    limit): only the estimate tells, and it is compared too."""
    run = write_run(tmp_path / "run", 4, FOUR)
    passk.score(run, ks=(1, 2))
    write_run(tmp_path / "run", 4, {**FOUR, "HumanEval_1_b": ["AssertionError"] * 3 + ["OK"]})
    code, err = record(capsys, run, tmp_path / "results.parquet")
    assert code == 2 and "its _scores.csv is out of date: pass@1 " in one_line_error(err)


def test_scores_from_fewer_samples_than_the_record_asks_for_are_refused(tmp_path, capsys):
    """A folder of side files alone (no results files to judge by): a pass@k row over fewer
    results per problem than the record's n is from before the folder grew, or partial."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "_scores.csv").write_text("Dataset,Pass@k,Estimate,NumProblems,MinCompletions,"
                                        "MaxCompletions\nrun,1,0.5,2,4,4\n")
    (folder / "_multiplt_run.yaml").write_text(yaml.safe_dump({"model": "m", "lang": "lua", "n": 8}))
    code, err = record(capsys, str(folder), tmp_path / "results.parquet")
    assert code == 2
    assert "its pass@1 row counts as few as 4 results for a problem, of the n=8 samples per " \
           "problem its run record asks for" in one_line_error(err)


def test_allow_partial_records_a_grown_folder_as_partial_if_scored_so(tmp_path, capsys):
    """--allow-partial: the folder not fully executed is recorded under NAME_partial, from
    scores that `score --allow-partial` wrote of it as it is now (not from older ones)."""
    store = tmp_path / "results.parquet"
    run = write_run(tmp_path / "run", 4, FOUR)
    passk.score(run)
    write_run(tmp_path / "run", 8, {**EIGHT, "HumanEval_1_b": ["AssertionError"] * 6})
    code, err = record(capsys, run, store, "--allow-partial")
    assert code == 2
    assert f"run `multiplt score --in {run} --allow-partial` again" in one_line_error(err)
    passk.score(run, allow_partial=True)
    assert record(capsys, run, store, "--allow-partial")[0] == 0
    row = read_store(str(store)).row(0, named=True)
    assert row["selection"] == "_partial" and row["min_completions"] == 6


def test_an_estimate_that_differs_only_by_rounding_is_current(tmp_path, capsys):
    """A folder scored by an earlier version (1 - comb/comb) or by MultiPL-E's pass_k.py under the
    same header: 0.050000000000000044 where score now writes 0.05. Rounding is not a change."""
    run = write_run(tmp_path / "run", 4, FOUR)
    passk.score(run)
    scores = pathlib.Path(run) / "_scores.csv"
    text = scores.read_text()
    assert ",0.375," in text
    scores.write_text(text.replace(",0.375,", ",0.37500000000000006,"))
    store = tmp_path / "results.parquet"
    code, err = record(capsys, run, store)
    assert code == 0, err
    assert read_store(str(store)).row(0, named=True)["estimate"] == 0.37500000000000006
