"""pass@k (issue 4, point 6): the estimator, k > n, the CSV and the per-problem parquet."""

from __future__ import annotations

import csv
import fractions
import gzip
import json
import math
import subprocess
import sys

import pytest

from multiplt.errors import MultipltError
from multiplt.evaluation import passk, run_folder


def exact(n, c, k):
    """1 - C(n-c, k) / C(n, k) as an exact fraction."""
    return 1 - fractions.Fraction(math.comb(n - c, k), math.comb(n, k))


def naive_float(n, c, k):
    """The textbook product form, for comparison."""
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


@pytest.mark.parametrize("n,c,k", [(1, 0, 1), (1, 1, 1), (10, 3, 1), (10, 3, 5), (200, 1, 100),
                                   (1000, 1, 1), (1000, 7, 10), (1000, 999, 100), (1000, 500, 1000),
                                   (1000, 2, 500), (1000, 0, 1000)])
def test_matches_exact_fraction(n, c, k):
    assert passk.pass_at_k(n, c, k) == float(exact(n, c, k))


def test_pass_at_1_is_c_over_n():
    for n in (1, 7, 200, 1000):
        for c in range(0, n + 1, max(1, n // 7)):
            assert passk.pass_at_k(n, c, 1) == pytest.approx(c / n, abs=1e-15)


def test_stable_for_n_1000_where_tiny_values_matter():
    # One success in 1000 samples: pass@k = k/1000 exactly; the float product drifts, we do not.
    for k in (1, 10, 100, 999):
        assert passk.pass_at_k(1000, 1, k) == k / 1000
    assert naive_float(1000, 1, 1) != 0.001  # the textbook float form is off in the last digits


def test_k_greater_than_n_is_refused_not_one():
    with pytest.raises(ValueError, match="undefined"):
        passk.pass_at_k(5, 0, 10)


def _write(folder, name, statuses, exit_codes=None, language="lua", temperature=0.2):
    exit_codes = exit_codes or [0 if s == "OK" else 1 for s in statuses]
    results = [{"program": f"p{i}", "stdout": "", "stderr": "", "exit_code": e, "status": s,
                "timestamp": 0} for i, (s, e) in enumerate(zip(statuses, exit_codes))]
    doc = {"name": name, "language": language, "temperature": temperature, "results": results}
    with gzip.open(folder / f"{name}.results.json.gz", "wt") as f:
        json.dump(doc, f)


def test_score_folder(tmp_path):
    folder = tmp_path / "humaneval-lua-m-main-0.2"
    folder.mkdir()
    _write(folder, "A", ["OK"] * 3 + ["AssertionError"] * 7)
    _write(folder, "B", ["OK"] + ["Exception"] * 9)
    # status OK with a non-zero exit code does not pass
    _write(folder, "C", ["OK"] * 10, exit_codes=[1] * 10)
    _write(folder, "D", ["OK", "Timeout"])  # n=2 < k=5: left out of pass@5, not counted as 1.0
    _write_completions(folder, "A", 10)  # completion files are not results (only checked for gaps)
    rows = passk.score(str(folder) + "/", ks=(1, 5))
    by_k = {r["Pass@k"]: r for r in rows}
    assert by_k[1]["Dataset"] == "humaneval-lua-m-main-0.2"
    assert by_k[1]["Estimate"] == pytest.approx((0.3 + 0.1 + 0.0 + 0.5) / 4)
    assert (by_k[1]["NumProblems"], by_k[1]["MinCompletions"], by_k[1]["MaxCompletions"]) == (4, 2, 10)
    want5 = (passk.pass_at_k(10, 3, 5) + passk.pass_at_k(10, 1, 5) + 0.0) / 3
    assert by_k[5]["Estimate"] == pytest.approx(want5)
    assert (by_k[5]["NumProblems"], by_k[5]["MinCompletions"]) == (3, 10)

    with open(folder / "_scores.csv") as f:
        table = list(csv.reader(f))
    assert table[0] == list(run_folder.SCORES_HEADER)
    assert [row[:2] for row in table[1:]] == [["humaneval-lua-m-main-0.2", "1"],
                                             ["humaneval-lua-m-main-0.2", "5"]]
    import polars as pl

    df = pl.read_parquet(folder / "_per_problem.parquet")
    assert df.columns == ["problem", "language", "n", "c", "pass@1", "pass@5", "timeouts",
                          "min_timeout_s", "max_timeout_s"]
    assert df["problem"].to_list() == ["A", "B", "C", "D"]
    assert df["c"].to_list() == [3, 1, 0, 1]
    assert df.filter(pl.col("problem") == "D")["pass@5"].to_list() == [None]
    # side files never end in .json / .json.gz
    assert not any(p.name.endswith((".json", ".json.gz")) and not p.name.endswith(".results.json.gz")
                   and p.name != "A.json.gz" for p in folder.iterdir())


def test_a_rescore_of_unchanged_results_writes_nothing(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    _write(folder, "A", ["OK", "Exception"])
    passk.score(str(folder), ks=(1,))
    written = {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.name.startswith("_")}
    assert sorted(written) == [run_folder.PER_PROBLEM_FILE, run_folder.SCORES_FILE]
    passk.score(str(folder), ks=(1,))
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.name.startswith("_")} == written
    _write(folder, "B", ["OK", "OK"])  # new results: both files change
    passk.score(str(folder), ks=(1,))
    assert all((folder / name).stat().st_mtime_ns != stamp for name, stamp in written.items())


def test_k_above_every_n_gives_no_row(tmp_path, caplog):
    _write(tmp_path, "A", ["OK", "OK"])
    rows = passk.score(str(tmp_path), ks=(1, 10))
    assert [r["Pass@k"] for r in rows] == [1]
    assert "no problem has 10 completions" in caplog.text


def test_empty_folder_is_an_error(tmp_path):
    with pytest.raises(MultipltError, match="no results files"):
        passk.score(str(tmp_path))
    with pytest.raises(MultipltError, match="does not exist"):
        passk.score(str(tmp_path / "missing"))


def test_a_file_is_no_results_folder(tmp_path, monkeypatch, capsys):
    """`score --in afile` said "no results files ... run multiplt execute first"."""
    from multiplt import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    for given in ("afile", f"file://{tmp_path}/afile"):
        assert cli.main(["score", "--in", given]) == 2
        assert capsys.readouterr().err.splitlines()[-1] == (
            f"multiplt score: error: {given} is a file, not a folder: give a folder of "
            "<name>.results.json.gz files")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_a_results_file_whose_name_is_not_a_string_is_refused(tmp_path):
    _write(tmp_path, "A", ["OK"])
    _write(tmp_path, "B", ["OK"])
    with gzip.open(tmp_path / "B.results.json.gz", "rt") as f:
        doc = json.load(f)
    with gzip.open(tmp_path / "B.results.json.gz", "wt") as f:
        json.dump({**doc, "name": 5}, f)
    with pytest.raises(MultipltError, match="B.results.json.gz: `name` must be a string, got 5"):
        passk.score(str(tmp_path))


def test_cli_formats(tmp_path):
    _write(tmp_path, "A", ["OK", "AssertionError"])
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "multiplt", "score", "--in", str(tmp_path), *args],
                              capture_output=True, text=True)
    out = cli("-k", "1,2")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == ",".join(run_folder.SCORES_HEADER)
    assert out.stdout.splitlines()[1] == f"{tmp_path.name},1,0.5,1,2,2"
    assert json.loads(cli("--format", "json").stdout)[0]["Estimate"] == 0.5
    assert "Pass@k" in cli("--format", "table").stdout
    bad = cli("-k", "0")
    assert bad.returncode == 2 and "-k must be" in bad.stderr


def test_parquet_writer_round_trips_through_polars():
    import io

    import polars as pl

    from multiplt.evaluation.parquet import write_table

    data = write_table([("problem", "string", ["A", "é", None]), ("n", "int64", [1, None, 3]),
                        ("pass@1", "double", [0.25, 1.0, None])])
    df = pl.read_parquet(io.BytesIO(data))
    assert df.schema == {"problem": pl.String, "n": pl.Int64, "pass@1": pl.Float64}
    assert df.to_dict(as_series=False) == {"problem": ["A", "é", None], "n": [1, None, 3],
                                           "pass@1": [0.25, 1.0, None]}
    big = pl.read_parquet(io.BytesIO(write_table([("x", "int64", list(range(1000)))])))
    assert big["x"].to_list() == list(range(1000))


def test_k_above_every_n_is_an_error_and_keeps_earlier_scores(tmp_path):
    _write(tmp_path, "A", ["OK", "OK"])
    _write(tmp_path, "B", ["OK", "Exception", "Exception"])
    passk.score(str(tmp_path), ks=(1,))
    before = {name: (tmp_path / name).read_bytes() for name in ("_scores.csv", "_per_problem.parquet")}
    with pytest.raises(MultipltError, match=r"no pass@k can be computed for k=5,10: every problem has "
                                            r"fewer than 5 completions \(n=2\.\.3\); nothing written"):
        passk.score(str(tmp_path), ks=(10, 5))
    assert {name: (tmp_path / name).read_bytes() for name in before} == before


@pytest.mark.parametrize("entry, problem", [
    ("OK", r"results\[1\] is not a JSON object \(got str\)"),
    ({"status": 0, "exit_code": 0}, r"results\[1\] has no string `status` \(got 0\)"),
    ({"exit_code": 0}, r"results\[1\] has no string `status` \(got None\)"),
], ids=["not-an-object", "int-status", "no-status"])
def test_malformed_result_entries_are_errors_naming_the_file(tmp_path, entry, problem):
    doc = {"name": "A", "language": "lua", "results": [
        {"program": "p", "stdout": "", "stderr": "", "exit_code": 0, "status": "OK", "timestamp": 0}, entry]}
    with gzip.open(tmp_path / "A.results.json.gz", "wt") as f:
        json.dump(doc, f)
    with pytest.raises(MultipltError, match=rf"A\.results\.json\.gz: {problem}"):
        passk.score(str(tmp_path))
    assert not (tmp_path / "_scores.csv").exists()


def _write_completions(folder, name, count):
    with gzip.open(folder / f"{name}.json.gz", "wt") as f:
        json.dump({"name": name, "language": "lua", "prompt": "", "tests": "",
                   "completions": [f"c{i}" for i in range(count)]}, f)


def test_a_folder_not_fully_executed_is_refused_unless_partial_is_allowed(tmp_path, capsys):
    """execute writes results as programs finish: scoring before it is done would silently
    cover only the programs that ran (a problem with no results file drops out entirely)."""
    from multiplt import cli

    for name in ("A", "B", "C"):
        _write_completions(tmp_path, name, 2)
    _write(tmp_path, "A", ["OK", "OK"])
    _write(tmp_path, "B", ["AssertionError"])                # 1 of 2 ran
    doc = json.loads(gzip.open(tmp_path / "B.results.json.gz", "rt").read())
    with gzip.open(tmp_path / "B.results.json.gz", "wt") as f:  # results files carry the completions
        json.dump({**doc, "completions": ["c0", "c1"]}, f)
    with pytest.raises(MultipltError, match=r"2 problem\(s\) not fully executed, e\.g\. B \(1 of 2\), "
                                            r"C \(0 of 2\)"):
        passk.score(str(tmp_path))
    assert not (tmp_path / run_folder.SCORES_FILE).exists()
    assert cli.main(["score", "--in", str(tmp_path)]) == 2
    assert "--allow-partial" in capsys.readouterr().err
    rows = passk.score(str(tmp_path), allow_partial=True)
    assert rows[0]["NumProblems"] == 2 and rows[0]["Estimate"] == 0.5
    # executed in full: scored without the flag
    _write_completions(tmp_path, "C", 0)
    doc["results"] = doc["results"] * 2
    with gzip.open(tmp_path / "B.results.json.gz", "wt") as f:
        json.dump({**doc, "completions": ["c0", "c1"]}, f)
    assert passk.score(str(tmp_path))[0]["NumProblems"] == 2
    # generate added samples after the execute (a larger --n): the results no longer cover them
    _write_completions(tmp_path, "A", 4)
    with pytest.raises(MultipltError, match=r"1 problem\(s\) not fully executed, e\.g\. A \(2 of 4\)"):
        passk.score(str(tmp_path))


def test_a_results_folder_of_its_own_is_checked_by_each_files_own_completions(tmp_path, capsys):
    """`execute --out OUT` cut short leaves OUT with results files only (the completions files
    stay in --in): each results file carries its problem's completions, and results that
    finished ahead of an earlier one wait under `multiplt_pending`; either way it is not fully
    executed, as a folder beside its completions files would be refused."""
    from multiplt import cli
    from multiplt.execution import files

    assert passk.PENDING_KEY == files.PENDING_KEY

    def problem(name, count):
        return {"name": name, "language": "lua", "prompt": "", "tests": "",
                "completions": [f"c{i}" for i in range(count)]}

    def results(doc, ran):
        return [{"program": files.program(doc, c), "stdout": "", "stderr": "", "exit_code": 0,
                 "status": "OK", "timestamp": 0, "timeout": 5} if i in ran else None
                for i, c in enumerate(doc["completions"])]

    def write(doc, ran):
        files.write_results(files.results_uri(str(tmp_path), doc["name"]),
                            files.results_doc(doc, results(doc, ran)))

    a, b, c = problem("A", 6), problem("B", 3), problem("C", 2)
    write(a, {0, 1, 2})  # 3 of 6 ran, in order
    write(b, {0, 2})     # 2 of 3 ran: one waits for completion 1's
    write(c, {0, 1})
    with pytest.raises(MultipltError, match=r"2 problem\(s\) not fully executed, e\.g\. A \(3 of 6\), "
                                            r"B \(1 of 3\)"):
        passk.score(str(tmp_path))
    assert not (tmp_path / run_folder.SCORES_FILE).exists()
    assert passk.judge(str(tmp_path), [1])[1] == [("A", 3, 6), ("B", 1, 3)]
    assert cli.main(["score", "--in", str(tmp_path)]) == 2
    assert "not fully executed" in capsys.readouterr().err
    assert passk.score(str(tmp_path), allow_partial=True)[0]["NumProblems"] == 3
    write(a, set(range(6)))
    write(b, {0, 1, 2})
    assert passk.score(str(tmp_path))[0]["NumProblems"] == 3
    assert passk.judge(str(tmp_path), [1])[1] == []
    # MultiPL-E's results files hold no completions: nothing to compare them with
    _write(tmp_path, "D", ["OK"])
    assert passk.score(str(tmp_path))[0]["NumProblems"] == 4


def test_a_folder_not_fully_generated_is_refused_unless_partial_is_allowed(tmp_path, capsys):
    """An interrupted generate leaves `complete: false` in the run record and problems with fewer
    completions than its n: executed and scored, they would be recorded as a run of n samples
    per problem. A record without `complete` (written before generate kept it) is not checked."""
    from multiplt import cli

    (tmp_path / run_folder.RUN_FILE).write_text("model: m\nlang: lua\nn: 4\ncomplete: false\n")
    for name, count in (("A", 4), ("B", 1), ("C", 3)):
        _write_completions(tmp_path, name, count)
        _write(tmp_path, name, ["OK"] * count)              # every sample that exists ran
    with pytest.raises(MultipltError, match=r"not fully generated: the last `multiplt generate` into it "
                                            r"did not finish \(_multiplt_run\.yaml says complete: false\), "
                                            r"e\.g\. B \(1 of 4\), C \(3 of 4\)"):
        passk.score(str(tmp_path))
    assert not (tmp_path / run_folder.SCORES_FILE).exists()
    assert cli.main(["score", "--in", str(tmp_path)]) == 2
    assert "--allow-partial" in capsys.readouterr().err
    assert passk.score(str(tmp_path), allow_partial=True)[0]["MinCompletions"] == 1
    # a later generate finished it (complete: true), with fewer samples than n for some problems
    # (after `--n 4` was cut short, `--n 1` had nothing to do): scored as they are
    (tmp_path / run_folder.RUN_FILE).write_text("model: m\nlang: lua\nn: 4\ncomplete: true\n")
    assert passk.score(str(tmp_path))[0]["MinCompletions"] == 1
    # a record from before `complete` was kept: not checked
    (tmp_path / run_folder.RUN_FILE).write_text("model: m\nlang: lua\nn: 4\n")
    assert passk.score(str(tmp_path))[0]["MinCompletions"] == 1
    # a run record that cannot be read is named, not ignored
    (tmp_path / run_folder.RUN_FILE).write_text("model: m\nn: many\n")
    with pytest.raises(MultipltError, match=r"_multiplt_run\.yaml: n must be a positive whole number"):
        passk.score(str(tmp_path))

def test_a_selected_problem_without_a_completions_file_is_refused_unless_partial_is_allowed(tmp_path,
                                                                                           capsys):
    """generate lists the problems it selected in the run record: a problem whose completions
    file is gone (deleted, or lost by a stage-out) has no results either, so neither the
    generation nor the execution check could see it, and the score would silently cover the
    other problems only. A record from before the list is checked as before."""
    from multiplt import cli

    (tmp_path / run_folder.RUN_FILE).write_text(
        "model: m\nlang: lua\nn: 2\ncomplete: true\nproblems:\n- A\n- B\n- C\n- D\n")
    for name in ("A", "C"):
        _write_completions(tmp_path, name, 2)
        _write(tmp_path, name, ["OK", "AssertionError"])
    with pytest.raises(MultipltError, match=r"2 problem\(s\) selected by `multiplt generate` "
                                            r"\(_multiplt_run\.yaml lists them\) have no completions "
                                            r"file, e\.g\. B, D: rerun the generate"):
        passk.score(str(tmp_path))
    assert not (tmp_path / run_folder.SCORES_FILE).exists()
    assert cli.main(["score", "--in", str(tmp_path)]) == 2
    assert "--allow-partial" in capsys.readouterr().err
    assert passk.score(str(tmp_path), allow_partial=True)[0]["NumProblems"] == 2
    # a record from before generate listed its selection: scored as before
    (tmp_path / run_folder.RUN_FILE).write_text("model: m\nlang: lua\nn: 2\ncomplete: true\n")
    assert cli.main(["score", "--in", str(tmp_path)]) == 0
    assert "is fully generated and executed (2 problems with completions)\n" in capsys.readouterr().err
    (tmp_path / run_folder.RUN_FILE).write_text("n: 2\ncomplete: true\nproblems: [A, C]\n")
    assert cli.main(["score", "--in", str(tmp_path)]) == 0
    assert ("is fully generated and executed (2 problems with completions, 2 selected by generate)\n"
            in capsys.readouterr().err)
    # completions files removed after execution: each results file holds its completions too
    for name in ("A", "C"):
        (tmp_path / f"{name}.json.gz").unlink()
    assert cli.main(["score", "--in", str(tmp_path)]) == 0


@pytest.mark.parametrize("text, problem", [
    ("n: 0\n", "n must be a positive whole number, got 0"),
    ("complete: maybe\n", "complete must be true or false, got 'maybe'"),
    ("problems: A\n", "problems must be a list of problem names, got 'A'"),
    ("problems: [A, 5]\n", r"problems must be a list of problem names, got \['A', 5\]"),
])
def test_score_and_generate_read_the_run_record_with_one_parser(tmp_path, text, problem):
    """One parser checks the record for both readers; only the advice of its errors differs."""
    from multiplt.generation import folder

    (tmp_path / run_folder.RUN_FILE).write_text("model: m\nlang: lua\n" + text)
    with pytest.raises(MultipltError, match=rf"_multiplt_run\.yaml: {problem}; mend it "
                                            r"\(--allow-partial skips the check\)"):
        run_folder.recorded_generation(str(tmp_path))
    with pytest.raises(MultipltError, match=rf"_multiplt_run\.yaml: {problem}; mend or remove it, "
                                            r"or use another --out"):
        folder.read_run(str(tmp_path))


def test_score_logs_its_funnels_and_prints_only_the_rows(tmp_path, capsys):
    """Problems in (results files) -> scored, samples in -> scored, each left out with its
    reason, on stderr; stdout stays the CSV that callers parse."""
    from multiplt import cli

    _write(tmp_path, "A", ["OK", "OK", "AssertionError"])
    _write(tmp_path, "B", ["OK", "Exception", "Exception"])
    _write(tmp_path, "C", ["OK"])              # fewer results than the least k
    _write(tmp_path, "D", [])                  # a problem without completions
    assert cli.main(["score", "--in", str(tmp_path), "-k", "2,3"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == ",".join(run_folder.SCORES_HEADER) and len(out.splitlines()) == 3
    assert ("score problems funnel: in=4 kept=2 dropped=2 (results file without results=1, "
            "fewer than 2 results (the least k)=1)\n") in err
    assert ("score samples funnel: in=7 kept=6 dropped=1 (of a problem with fewer than 2 results "
            "(the least k)=1)\n") in err
    assert "score: 3 of the 6 samples scored passed\n" in err
    assert ("has no completions files to check its results against (each results file was "
            "checked against its own completions, where it holds them)\n") in err
    assert cli.main(["score", "--in", str(tmp_path), "--allow-partial"]) == 0
    assert "score: --allow-partial: " in capsys.readouterr().err


def test_score_takes_k_as_dash_dash_k_too_as_evaluate_does(tmp_path, capsys):
    """`score --k 1,2` is `score -k 1,2` (evaluate and `results show` spell it --k)."""
    from multiplt import cli

    _write(tmp_path, "A", ["OK", "OK", "AssertionError"])
    assert cli.main(["score", "--in", str(tmp_path), "-k", "1,2"]) == 0
    short = capsys.readouterr().out
    assert cli.main(["score", "--in", str(tmp_path), "--k", "1,2"]) == 0
    assert capsys.readouterr().out == short and len(short.splitlines()) == 3


@pytest.mark.parametrize("entry, problem", [
    ({"status": "OK"}, r"results\[1\] has no `exit_code`"),
    ({"status": "AssertionError"}, r"results\[1\] has no `exit_code`"),
    ({"status": "OK", "exit_code": "0"}, r"results\[1\] has an `exit_code` that is not an integer \(got '0'\)"),
    ({"status": "OK", "exit_code": True}, r"results\[1\] has an `exit_code` that is not an integer \(got True\)"),
    ({"status": "OK", "exit_code": None}, r"results\[1\] has status OK and a null `exit_code`"),
], ids=["no-exit-code", "no-exit-code-failed", "str", "bool", "null-ok"])
def test_a_result_without_an_integer_exit_code_is_an_error_as_one_without_status(tmp_path, entry,
                                                                                 problem, capsys):
    """passed() needs status OK and exit code 0: a result without an exit code would silently
    count as a failure (MultiPL-E's pass_k.py reads only the status), so it is an error naming
    the file, as a missing status is, with or without --allow-partial. A null exit code of a
    failed run (a MultiPL-E runner may write one for a timeout) is a failure."""
    from multiplt import cli

    doc = {"name": "A", "language": "lua", "results": [
        {"program": "p", "stdout": "", "stderr": "", "exit_code": 0, "status": "OK", "timestamp": 0}, entry]}
    with gzip.open(tmp_path / "A.results.json.gz", "wt") as f:
        json.dump(doc, f)
    for partial in (False, True):
        with pytest.raises(MultipltError, match=rf"A\.results\.json\.gz: {problem}"):
            passk.score(str(tmp_path), allow_partial=partial)
    assert cli.main(["score", "--in", str(tmp_path)]) == 2
    assert "A.results.json.gz: results[1]" in capsys.readouterr().err
    assert not (tmp_path / "_scores.csv").exists()
    doc["results"][1] = {**doc["results"][0], "status": "Timeout", "exit_code": None}
    with gzip.open(tmp_path / "A.results.json.gz", "wt") as f:
        json.dump(doc, f)
    assert passk.score(str(tmp_path))[0]["Estimate"] == 0.5


def test_more_results_than_completions_is_an_error_naming_the_file(tmp_path, capsys):
    """A results file with more results than its completions file has completions (the
    completions were cut after execute) is stale, not partial: an error with or without
    --allow-partial, not a problem scored over samples that are no longer there."""
    from multiplt import cli

    for name in ("A", "B"):
        _write_completions(tmp_path, name, 2)
    _write(tmp_path, "A", ["OK", "OK"])
    _write(tmp_path, "B", ["OK", "AssertionError", "AssertionError"])
    for partial in (False, True):
        with pytest.raises(MultipltError, match=r"B\.results\.json\.gz: 3 results for the 2 completions "
                                                r"of problem B's completions file: the completions "
                                                r"changed after `multiplt execute`; run `multiplt "
                                                r"execute --in .*` to redo them; nothing written"):
            passk.score(str(tmp_path), allow_partial=partial)
    assert cli.main(["score", "--in", str(tmp_path), "--allow-partial"]) == 2
    assert "B.results.json.gz: 3 results for the 2 completions" in capsys.readouterr().err
    assert not (tmp_path / run_folder.SCORES_FILE).exists()
    # fewer results than completions stays what it was: refused unless partial is allowed
    _write(tmp_path, "B", ["OK"])
    with pytest.raises(MultipltError, match=r"not fully executed, e\.g\. B \(1 of 2\)"):
        passk.score(str(tmp_path))
    assert passk.score(str(tmp_path), allow_partial=True)[0]["MaxCompletions"] == 2


@pytest.mark.parametrize("doc, problem", [
    ({"name": "B", "language": "lua", "prompt": "", "tests": ""}, r"no `completions` list \(got none\)"),
    ({"name": "B", "completions": "c0"}, r"no `completions` list \(got str\)"),
    (["c0"], r"not a completions file \(a JSON object\), got list"),
], ids=["missing", "str", "not-an-object"])
def test_a_completions_file_without_completions_is_an_error_naming_it(tmp_path, doc, problem, capsys):
    """execute refuses such a file; score named nothing and scored the problem from its results
    (counting it as 0 completions). With or without --allow-partial, it is an error."""
    from multiplt import cli

    _write_completions(tmp_path, "A", 1)
    _write(tmp_path, "A", ["OK"])
    _write(tmp_path, "B", ["OK"])
    with gzip.open(tmp_path / "B.json.gz", "wt") as f:
        json.dump(doc, f)
    for partial in (False, True):
        with pytest.raises(MultipltError, match=rf"B\.json\.gz: {problem}"):
            passk.score(str(tmp_path), allow_partial=partial)
    assert cli.main(["score", "--in", str(tmp_path)]) == 2
    assert "B.json.gz: " in capsys.readouterr().err
    assert not (tmp_path / run_folder.SCORES_FILE).exists()
