"""`multiplt testgen` end to end on the replay fixture (tests/fixtures/testgen): exact tests,
failures, coverage and types per function; shards, stages, kill-and-rerun, bad input."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import polars as pl
import pytest

from multiplt.cli import main

FIXTURE = pathlib.Path(__file__).parents[1] / "fixtures" / "testgen"
REPLAY = str(FIXTURE / "replay.jsonl")


def functions_parquet(tmp_path, rows=None, name="functions") -> str:
    rows = rows or [json.loads(line) for line in (FIXTURE / "functions.jsonl").read_text().splitlines()]
    folder = tmp_path / name / "functions"
    folder.mkdir(parents=True)
    pl.DataFrame(rows).write_parquet(folder / "part-0.parquet")
    return str(tmp_path / name)


def run_testgen(functions, out, *extra, replay=REPLAY):
    return main(["testgen", "--functions", functions, "--out", str(out), "--backend", "replay",
                 "--replay-source", replay, "--n", "2", *extra])


def tables(out):
    tests = pl.concat([pl.read_parquet(p) for p in sorted((out / "tests").glob("*.parquet"))],
                      how="diagonal_relaxed")
    excluded = pl.concat([pl.read_parquet(p) for p in sorted((out / "excluded").glob("*.parquet"))],
                         how="diagonal_relaxed")
    return ({r["entrypoint"]: r for r in tests.iter_rows(named=True)},
            {r["entrypoint"]: r for r in excluded.iter_rows(named=True)})


EXPECTED_KEPT = {
    "add": (["assert add(1, 2) == 3"], ["assert add(2, 2) == 5"], 100,
            'def add(a: int, b: int) -> int:\n    """Add two numbers."""\n    return a + b\n'),
    # the fixture's hostile asserts (a 10 MB print, killing the runner, an endless loop) have
    # expected values that are not literals: rejected when parsed (expected_not_literal); the
    # runner's own tests (tests/unit/testgen/test_runner.py) run such asserts
    "count_words": (["assert count_words('one') == 1", "assert count_words('hello world again') == 3"],
                    ["assert count_words('') == 1"], 100,
                    'def count_words(text: str) -> int:\n    """Number of words in text."""\n'
                    '    return len(WORD.findall(text))\n'),
    "first_or_none": (["assert first_or_none([1, 2]) == 1", "assert first_or_none([]) == None",
                       "assert first_or_none([7]) == 7"], [], 100,
                      "from typing import List, Optional\n\ndef first_or_none(xs: List[int]) -> "
                      'Optional[int]:\n    """The first element of xs, or None."""\n    if xs:\n'
                      "        return xs[0]\n    return None\n"),
    "same": (["assert same(1) == 1", "assert same('a') == 'a'", "assert same(3) == 3"], [], 100, None),
}
EXPECTED_EXCLUDED = {
    "clamp": ("low_coverage", ["assert clamp(5, 0, 10) == 5"], [], 60),
    "broken": ("no_passing_test", [], ["assert broken(1) == 1", "assert broken(2) == 2",
                                       "assert broken('a') == 'a1'"], None),
    "silent": ("no_asserts", [], [], None),
}
EXPECTED_STEPS = [("input", 7, 7), ("malformed_row", 7, 7), ("duplicate_sha1", 7, 7),
                  ("no_asserts", 7, 6), ("no_passing_test", 6, 5), ("flaky", 5, 5),
                  ("coverage_error", 5, 5), ("low_coverage", 5, 4)]


def check_outputs(out):
    kept, excluded = tables(out)
    assert {k: (r["tests"], r["tests_failed"], r["coverage"], r["content_with_types"])
            for k, r in kept.items()} == EXPECTED_KEPT
    assert kept["same"]["types_reason"] == "parameter x is a Union (Union[int, str])"
    assert {k: (r["reason"], r["tests"], r["tests_failed"], r["coverage"])
            for k, r in excluded.items()} == EXPECTED_EXCLUDED
    row = kept["count_words"]
    assert row["context"].startswith("import re") and row["id"] == "fixture/count_words.py:1"
    assert row["sha1"] == hashlib.sha1(row["content"].encode()).hexdigest()
    assert (row["backend"], row["n"], row["temperature"], row["top_p"], row["max_new_tokens"],
            row["origin"]) == ("replay", 2, 0.2, 0.95, 400, "fixture")
    funnel = json.loads((out / "funnel.json").read_text())
    assert [(s["name"], s["in"], s["out"]) for s in funnel["steps"]] == EXPECTED_STEPS
    assert funnel["asserts"] == {"kept": 15, "unparsable": 3, "duplicate": 3, "keyword_argument": 2,
                                 "expected_not_literal": 3}
    assert funnel["verdicts"] == {"OK": 10, "AssertionError": 4, "TypeError": 1}
    assert funnel["types"] == {"typed": 3, "untyped": 1}
    # the code that validated (the sandbox image's in a DAG run): this checkout, its coverage.py
    from multiplt import provenance

    here = provenance.describe(provenance.TESTGEN)
    [made_by] = funnel["validate_provenance"]
    assert (made_by["code_version"], made_by["libraries"]["coverage"]) == (
        here["code_version"], here["libraries"]["coverage"])


@pytest.mark.slow
def test_replay_fixture_gives_exact_tests_coverage_and_types(tmp_path, capsys):
    out = tmp_path / "out"
    assert run_testgen(functions_parquet(tmp_path), out) == 0
    check_outputs(out)
    capsys.readouterr()
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert run_testgen(functions_parquet(tmp_path, name="again"), out) == 0  # done: skipped
    assert json.loads(capsys.readouterr().out)["skipped"] is True
    # no output written: only input.json, the listing of the input whose rows were compared
    now = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert [p.name for p in now if now[p] != stamps.get(p)] == ["input.json"]


def test_write_refuses_a_shard_whose_rows_changed_since_its_validation(tmp_path, capsys):
    """The DAG runs a shard's write once every validate ended, also after its generate refused
    rows changed since an earlier unfinished run (a corpus rebuilt in place): write compares the
    rows too, exit 2, and writes no parquet and no _DONE (it finished the old rows before)."""
    functions, out = functions_parquet(tmp_path), tmp_path / "out"
    for stage in ("generate", "validate"):
        assert run_testgen(functions, out, "--shard", "1/2", "--stage", stage) == 0
    part = pathlib.Path(functions) / "functions" / "part-0.parquet"
    pl.read_parquet(part).head(1).write_parquet(part)  # rebuilt in place, one function kept
    capsys.readouterr()
    assert run_testgen(functions, out, "--shard", "1/2", "--stage", "generate") == 2
    assert run_testgen(functions, out, "--shard", "1/2", "--stage", "write") == 2
    assert "over other rows" in capsys.readouterr().err
    assert not (out / "tests").exists()
    assert not (out / "work" / "shard-00001-of-00002" / "_DONE").exists()


@pytest.mark.slow
def test_shards_and_stages_give_the_same_rows(tmp_path):
    functions, out = functions_parquet(tmp_path), tmp_path / "out"
    assert run_testgen(functions, out, "--shard", "0/2") == 0
    assert not (out / "funnel.json").exists()  # shard 1 of 2 still missing
    for stage in ("generate", "validate", "write"):
        assert run_testgen(functions, out, "--shard", "1/2", "--stage", stage) == 0
    check_outputs(out)
    assert json.loads((out / "funnel.json").read_text())["shards"] == 2
    # another layout (no shard, or another N) into the same --out: refused, nothing written
    before = sorted(str(p) for p in out.rglob("*"))
    for flags in ([], ["--shard", "0/3"]):
        assert run_testgen(functions, out, *flags) == 2
    assert sorted(str(p) for p in out.rglob("*")) == before


@pytest.mark.slow
def test_a_validation_killed_between_its_two_files_is_validated_again(tmp_path, capsys):
    """validate writes the shard's funnel.json, then outcomes.jsonl (the file write looks for);
    a shard with outcomes but no funnel (the order before) or a funnel but no outcomes (a kill
    now) is refused by write, and validating again completes it."""
    functions, out = functions_parquet(tmp_path), tmp_path / "out"
    work = out / "work" / "shard-all"
    assert run_testgen(functions, out, "--stage", "generate") == 0
    assert run_testgen(functions, out, "--stage", "validate") == 0
    for missing in ("funnel.json", "outcomes.jsonl"):
        saved = (work / missing).read_bytes()
        (work / missing).unlink()
        assert run_testgen(functions, out, "--stage", "write") == 2
        assert f"{missing} is missing: run the validate stage" in capsys.readouterr().err
        assert not (work / "_DONE").exists() and not (out / "tests").exists()
        (work / missing).write_bytes(saved)
    (work / "outcomes.jsonl").unlink()
    assert run_testgen(functions, out, "--stage", "validate") == 0
    assert run_testgen(functions, out, "--stage", "write") == 0
    check_outputs(out)


def _slow_fixture(tmp_path, count=6):
    rows, replay = [], []
    for i in range(count):
        content = f'def f{i}(x):\n    """Sleep then return x."""\n    time.sleep(0.4)\n    return x\n'
        sha = hashlib.sha1(content.encode()).hexdigest()
        rows.append({"content": content, "id": f"slow/{i}", "sha1": sha, "entrypoint": f"f{i}",
                     "context": "import time"})
        replay.append({"name": sha, "completion": f"1) == 1\nassert f{i}(2) == 2\n"})
        replay.append({"name": sha, "completion": "3) == 3\n"})
    path = tmp_path / "slow.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in replay))
    return functions_parquet(tmp_path, rows, "slow"), str(path)


@pytest.mark.slow
def test_kill_and_rerun_loses_only_the_batch_in_flight(tmp_path):
    functions, replay = _slow_fixture(tmp_path)
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "multiplt", "testgen", "--functions", functions, "--out",
            str(out), "--backend", "replay", "--replay-source", replay, "--n", "2", "--workers", "1"]
    env = {**os.environ, "MULTIPLT_TESTGEN_BATCH_ASSERTS": "3", "MULTIPLT_TESTGEN_SAVE_EVERY_S": "0"}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    checks = out / "work" / "shard-all" / "checks"
    deadline = time.monotonic() + 120
    while len(list(checks.glob("part-*.json"))) < 2 and time.monotonic() < deadline:
        assert proc.poll() is None, "finished before it could be killed"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = sum(len(json.loads(p.read_text())) for p in checks.glob("part-*.json"))
    assert 2 <= saved < 6 and not (out / "tests").exists()
    assert subprocess.run(argv, env=env, capture_output=True).returncode == 0
    funnel = json.loads((out / "work" / "shard-all" / "funnel.json").read_text())
    assert funnel["execution"]["functions_reused"] == saved
    assert funnel["execution"]["functions_run"] == 6 - saved
    kept, excluded = tables(out)
    assert not excluded and sorted(kept) == [f"f{i}" for i in range(6)]
    assert all(r["tests"] == [f"assert f{i}(1) == 1", f"assert f{i}(2) == 2", f"assert f{i}(3) == 3"]
               and r["coverage"] == 100 for i, r in ((int(k[1:]), v) for k, v in kept.items()))


def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys):
    good = functions_parquet(tmp_path)
    no_context = [{k: v for k, v in json.loads(line).items() if k != "context"}
                  for line in (FIXTURE / "functions.jsonl").read_text().splitlines()]
    bad_columns = functions_parquet(tmp_path, no_context, "nocontext")
    empty = str(tmp_path / "empty")  # a corpus that kept no function: its columns, 0 rows
    (tmp_path / "empty" / "functions").mkdir(parents=True)
    pl.read_parquet(f"{good}/functions/part-0.parquet").clear().write_parquet(
        tmp_path / "empty" / "functions" / "part-0.parquet")
    cases = [
        (["--functions", empty, "--backend", "replay", "--replay-source", REPLAY],
         f"multiplt testgen: error: functions dataset {empty} has no rows\n"),
        (["--functions", empty, "--backend", "replay", "--replay-source", REPLAY, "--shard", "1/2",
          "--stage", "generate"], f"functions dataset {empty} has no rows"),
        (["--functions", bad_columns, "--backend", "replay", "--replay-source", REPLAY],
         "lacks required column(s) context"),
        (["--functions", good, "--backend", "replay", "--replay-source", str(tmp_path / "none.jsonl")],
         "replay source"),
        (["--functions", good, "--backend", "replay"], "needs --replay-source"),
        (["--functions", good, "--backend", "openai", "--model", "m", "--replay-source", REPLAY],
         "--replay-source is for --backend replay only"),  # as generate: openai would ignore it
        (["--functions", good, "--backend", "replay", "--replay-source", REPLAY, "--n", "3"],
         "fewer than 3 completions for 7 function(s)"),
        (["--functions", str(tmp_path / "missing"), "--backend", "replay", "--replay-source", REPLAY],
         "does not exist"),
        (["--functions", good, "--backend", "replay", "--replay-source", REPLAY, "--shard", "2/2"],
         "--shard 2/2"),
        (["--functions", good, "--backend", "replay", "--replay-source", REPLAY, "--max-new-tokens", "-1"],
         "--max-new-tokens must be at least 1, got -1"),
        (["--functions", good, "--backend", "replay", "--replay-source", REPLAY, "--n", "100000000000"],
         "--n must be at most 10000, got 100000000000"),  # a request per completion, made up front
        (["--functions", good, "--backend", "replay", "--replay-source", REPLAY, "--shard", "0/100001"],
         "--shard 0/100001: N is at most 100000"),
        (["--functions", good, "--backend", "replay", "--replay-source", REPLAY, "--top-p", "5"],
         "bad sampling settings"),
        (["--functions", good, "--backend", "replay", "--replay-source", REPLAY, "--batch-size", "0"],
         "--batch-size must be at least 1"),
        (["--functions", good, "--backend", "replay", "--replay-source", REPLAY, "--timeout", "nan"],
         "--timeout must be positive and at most 86400 seconds (one day), got nan"),
        (["--functions", good, "--backend", "replay", "--replay-source", REPLAY, "--timeout", "inf"],
         "--timeout must be positive and at most 86400 seconds (one day), got inf"),
    ]
    for i, (argv, message) in enumerate(cases):
        out = tmp_path / f"out{i}"
        assert main(["testgen", "--out", str(out), *argv]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("error:") == 1, argv
        assert not out.exists(), argv
    # a backend the registry does not know: argparse's usage error (exit 2), before any work
    with pytest.raises(SystemExit) as exited:
        main(["testgen", "--out", str(tmp_path / "outb"), "--functions", good, "--backend", "nonsense"])
    assert exited.value.code == 2 and "invalid choice: 'nonsense'" in capsys.readouterr().err
    assert not (tmp_path / "outb").exists()


def test_a_shard_without_rows_of_a_dataset_with_rows_succeeds_with_its_funnel(tmp_path):
    """Only an input without any row is refused: one of its shards may hold none (no fixture
    sha1 is 1 modulo 8), and then writes its empty outputs and a funnel saying so."""
    functions, out = functions_parquet(tmp_path), tmp_path / "out"
    assert run_testgen(functions, out, "--shard", "1/8") == 0
    funnel = json.loads((out / "work" / "shard-00001-of-00008" / "funnel.json").read_text())
    assert funnel["steps"][0] == {"name": "input", "in": 0, "out": 0}
    assert pl.read_parquet(out / "tests" / "shard-00001-of-00008.parquet").height == 0


@pytest.mark.slow
def test_transformers_backend_with_the_tiny_model_runs_end_to_end(tmp_path, tiny_model):
    out = tmp_path / "out"
    assert main(["testgen", "--functions", functions_parquet(tmp_path), "--out", str(out),
                 "--backend", "transformers", "--model", tiny_model, "--n", "2",
                 "--max-new-tokens", "24"]) == 0
    funnel = json.loads((out / "funnel.json").read_text())
    assert funnel["steps"][0] == {"name": "input", "in": 7, "out": 7}
    kept, _ = (pl.read_parquet(out / "tests" / "shard-all.parquet"),
               pl.read_parquet(out / "excluded" / "shard-all.parquet"))
    assert funnel["steps"][-1]["out"] == kept.height  # yields may be zero; the funnel says so
    completions = list((out / "work" / "shard-all" / "completions").glob("*.json.gz"))
    assert len(completions) == 7


@pytest.mark.slow
def test_validate_stage_runs_with_only_the_sandbox_images_extra(tmp_path):
    """The docker runtime runs `--stage validate` in the sandbox image (core + `exec`: no
    polars): it must work there, coverage.py included."""
    from tests import packaging_facts as facts

    site = facts.site_with_only(set(facts.core_pins()) | set(facts.extras()["exec"]),
                                tmp_path / "site")
    assert subprocess.run([sys.executable, "-I", "-S", "-c", "import sys; sys.path[:0] = "
                           f"[{str(site)!r}]; import polars"], capture_output=True).returncode != 0
    functions, out = functions_parquet(tmp_path), tmp_path / "out"
    assert run_testgen(functions, out, "--stage", "generate") == 0
    code = ("import sys\nsys.path[:0] = [sys.argv.pop(1), sys.argv.pop(1)]\n"
            "from multiplt.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    validate = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(site), str(pathlib.Path(__file__).parents[2]),
         "testgen", "--functions", functions, "--out", str(out), "--backend", "replay",
         "--replay-source", REPLAY, "--n", "2", "--stage", "validate"],
        capture_output=True, text=True, timeout=600)
    assert validate.returncode == 0, validate.stderr[-3000:]
    assert run_testgen(functions, out, "--stage", "write") == 0
    check_outputs(out)
    # the run's funnel names what validated: the sandbox's environment, without torch, which
    # config.json's provenance (generate's and write's, this process) has
    [made_by] = json.loads((out / "funnel.json").read_text())["validate_provenance"]
    config = json.loads((out / "work" / "shard-all" / "config.json").read_text())
    assert "torch" not in made_by["libraries"] and "torch" in config["provenance"]["libraries"]


def test_malformed_and_duplicate_rows_are_excluded_with_reasons(tmp_path):
    rows = [json.loads(line) for line in (FIXTURE / "functions.jsonl").read_text().splitlines()]
    add = next(r for r in rows if r["entrypoint"] == "add")
    bad = [{**add, "id": "dup"},
           {**add, "id": "nofn", "entrypoint": "missing", "sha1": "0" * 40},
           {**add, "id": "syntax", "content": "def add(:\n", "sha1": "1" * 40},
           {**add, "id": "empty", "content": "", "sha1": "2" * 40},
           {**add, "id": "escape", "sha1": "../../escape"}]  # its sha1 would name a file outside OUT
    out = tmp_path / "out"
    assert run_testgen(functions_parquet(tmp_path, [add, *bad]), out) == 0
    kept, _ = tables(out)
    excluded = pl.read_parquet(out / "excluded" / "shard-all.parquet")
    reasons = {r["id"]: (r["reason"], r["detail"]) for r in excluded.iter_rows(named=True)}
    assert reasons["dup"] == ("duplicate_sha1", "same sha1 as an earlier row")
    assert reasons["nofn"] == ("malformed_row", "content defines no top-level function missing")
    assert reasons["syntax"][0] == "malformed_row" and "does not parse" in reasons["syntax"][1]
    assert reasons["empty"] == ("malformed_row", "content is empty or not a string")
    assert reasons["escape"][0] == "malformed_row" and "sha1 is not a plain file name" in reasons["escape"][1]
    assert list(kept) == ["add"]
    assert not list(tmp_path.rglob("escape*"))
    steps = json.loads((out / "funnel.json").read_text())["steps"]
    assert [(s["name"], s["in"], s["out"]) for s in steps[:3]] == [
        ("input", 6, 6), ("malformed_row", 6, 2), ("duplicate_sha1", 2, 1)]


def test_an_input_whose_every_row_is_malformed_is_refused(tmp_path, capsys):
    """All rows malformed is a wrong input, not functions to drop: exit 2, one line naming the
    input and the first row's reason, nothing written. A shard whose own rows are all malformed
    still runs when another shard holds a usable row."""
    rows = [json.loads(line) for line in (FIXTURE / "functions.jsonl").read_text().splitlines()]
    bad = [{**row, "content": "45"} for row in rows]
    functions, out = functions_parquet(tmp_path, bad, "bad"), tmp_path / "out"
    assert run_testgen(functions, out) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"functions dataset {functions}: all {len(rows)} rows are malformed" in err
    assert f"(row 0, id {rows[0]['id']!r}): content defines no top-level function {rows[0]['entrypoint']}" in err
    assert not out.exists()
    one_good = [rows[0], *bad[1:]]
    shard = next(k for k in range(2) if int(rows[0]["sha1"], 16) % 2 != k)  # the all-bad shard
    assert run_testgen(functions_parquet(tmp_path, one_good, "mixed"), out, "--shard", f"{shard}/2") == 0


@pytest.mark.slow
def test_runs_on_s3_with_sharding(tmp_path, s3_bucket):
    """Input, replay source and output on S3 (the moto server): same rows as on local disk."""
    from multiplt import storage

    local = pathlib.Path(functions_parquet(tmp_path)) / "functions" / "part-0.parquet"
    functions = storage.join(s3_bucket, "corpus", "functions")
    storage.write_bytes(storage.join(functions, "part-0.parquet"), local.read_bytes())
    replay = storage.join(s3_bucket, "replay.jsonl")
    storage.write_bytes(replay, pathlib.Path(REPLAY).read_bytes())
    out = storage.join(s3_bucket, "testgen")
    for k in range(2):
        assert run_testgen(functions, out, "--shard", f"{k}/2", replay=replay) == 0
    local_out = tmp_path / "copy"
    storage.download_dir(storage.join(out, "tests"), str(local_out / "tests"))
    storage.download_dir(storage.join(out, "excluded"), str(local_out / "excluded"))
    (local_out / "funnel.json").write_bytes(storage.read_bytes(storage.join(out, "funnel.json")))
    check_outputs(local_out)


def test_a_rerun_with_other_settings_or_rows_is_refused(tmp_path, capsys):
    rows = [json.loads(line) for line in (FIXTURE / "functions.jsonl").read_text().splitlines()]
    add = next(r for r in rows if r["entrypoint"] == "add")
    functions, out = functions_parquet(tmp_path, [add]), tmp_path / "out"
    assert run_testgen(functions, out, "--stage", "generate") == 0
    assert run_testgen(functions, out, "--stage", "validate", "--min-coverage", "50") == 2
    assert "min_coverage: 90 there, 50 now" in capsys.readouterr().err
    other = functions_parquet(tmp_path, [add, next(r for r in rows if r["entrypoint"] == "same")],
                              "other")
    (out / "work" / "shard-all" / "config.json").unlink()  # same settings, other rows
    assert run_testgen(other, out, "--stage", "generate") == 2
    assert "over other rows" in capsys.readouterr().err


def test_validation_runs_as_many_programs_at_once_as_the_cpu_budget_allows(tmp_path, monkeypatch):
    """Without --workers, validation counted the cores itself and ignored MULTIPLT_CPUS, the
    `cpus` cap the local stage runtime sets (execution.executor.default_workers). Eight cores
    (as tests/unit/execution/test_cpus_env.py has them), so a count of the cores is no budget
    of 1 on a machine of one core."""
    from multiplt.execution import executor
    from multiplt.testgen import execute

    monkeypatch.setattr(executor.os, "sched_getaffinity", lambda pid: set(range(8)))
    seen = []
    real = execute.run_all
    monkeypatch.setattr(execute, "run_all", lambda *a, **kw: seen.append(kw["workers"]) or real(*a, **kw))
    monkeypatch.setenv("MULTIPLT_CPUS", "1")
    assert run_testgen(functions_parquet(tmp_path), tmp_path / "out") == 0
    assert seen == [1]
