"""`multiplt evaluate` end to end on the CPU: benchmark build, generate, execute (sandbox) and
score in one command, with the tiny model and with replayed reference solutions."""

import os

import pytest

from multiplt import cli, storage
from tests.fixtures import solutions

pytestmark = pytest.mark.slow
LANGS = "rkt,lua"


@pytest.fixture(scope="module")
def benchmarks(tmp_path_factory):
    """One benchmark folder for the module: the first evaluate builds it, later ones reuse it."""
    return str(tmp_path_factory.mktemp("benchmarks"))


def evaluate(out, benchmarks, *extra):
    return cli.main(["evaluate", "--lang", LANGS, "--out", out, "--benchmarks", benchmarks,
                     "--workers", "2", *extra])


def run_folders(out):
    return sorted(u for u in storage.ls(out) if u.endswith("/") and storage.basename(u.rstrip("/")).startswith("humaneval"))


def snapshot(folders):
    """mtime of every file the pipeline wrote for generate and execute."""
    return {path: os.stat(path).st_mtime_ns for f in folders for path in
            (storage.local_path(u) for u in storage.ls(f))
            if path.endswith((".json.gz", ".yaml"))}


def test_tiny_model_two_languages_resume_and_rerun(tiny_model, tmp_path, benchmarks, capsys):
    out = str(tmp_path / "eval")
    model = ["--model", tiny_model, "--limit", "2", "--max-new-tokens", "12", "--temperature", "0.8"]
    assert evaluate(out, benchmarks, *model, "--n", "1") == 0
    assert sorted(storage.basename(u) for u in storage.ls(benchmarks)) == [
        "humaneval-lua.jsonl", "humaneval-lua.jsonl.report.json",
        "humaneval-rkt.jsonl", "humaneval-rkt.jsonl.report.json"]
    folders = run_folders(out)
    assert len(folders) == 2
    firsts = {u: storage.read_json(u)["completions"][0] for f in folders for u in storage.ls(f)
              if u.endswith(".json.gz") and not u.endswith(".results.json.gz")}
    assert len(firsts) == 4

    # resume to 2 samples: sample 0 is kept, sample 1 added, and everything is executed and scored
    assert evaluate(out, benchmarks, *model, "--n", "2") == 0
    for uri, first in firsts.items():
        assert storage.read_json(uri)["completions"][:1] == [first]
        assert len(storage.read_json(uri)["completions"]) == 2
        results = storage.read_json(uri.replace(".json.gz", ".results.json.gz"))["results"]
        assert len(results) == 2 and all(r["status"] for r in results)
    for f in folders:
        assert storage.exists(storage.join(f, "_scores.csv"))
        assert storage.exists(storage.join(f, "_per_problem.parquet"))
        assert set(storage.basename(u) for u in storage.ls(f)) <= {
            "_scores.csv", "_per_problem.parquet", "_multiplt_run.yaml",
            *(storage.basename(u) for u in firsts), *(storage.basename(u).replace(".json.gz", ".results.json.gz")
                                                      for u in firsts)}
    table = capsys.readouterr().out
    assert "pass@k" in table and "rkt" in table and "lua" in table

    # a rerun with nothing missing rewrites no completion, result or run file
    before = snapshot(folders)
    assert evaluate(out, benchmarks, *model, "--n", "2") == 0
    assert snapshot(folders) == before


def test_replayed_reference_solutions_score_exactly_half(tmp_path, benchmarks, capsys):
    replay = tmp_path / "replay"
    names = None
    for code in LANGS.split(","):
        bench = storage.join(benchmarks, f"humaneval-{code}.jsonl")
        if not storage.exists(bench):
            from multiplt.benchmarks.build import build_benchmark

            build_benchmark("humaneval", code, bench)
        shared = sorted(set(solutions.load("rkt")) & set(solutions.load("lua")))[:3]
        names = solutions.write_completion_folder(bench, code, str(replay / code), names=shared)
    out = str(tmp_path / "eval")
    assert evaluate(out, benchmarks, "--backend", "replay", "--replay-source", str(replay / "{lang}"),
                    "--model", "reference", "--n", "2", "--problems", ",".join(names)) == 0
    for folder in run_folders(out):
        csv = storage.read_text(storage.join(folder, "_scores.csv")).splitlines()
        assert csv[0] == "Dataset,Pass@k,Estimate,NumProblems,MinCompletions,MaxCompletions"
        fields = csv[1].split(",")
        assert fields[1] == "1" and float(fields[2]) == 0.5 and fields[3] == "3", csv
    assert capsys.readouterr().out.count("0.5000") == 2

    # another selection into the same root gets its own folders, scored over its problems only
    first = set(run_folders(out))
    assert evaluate(out, benchmarks, "--backend", "replay", "--replay-source", str(replay / "{lang}"),
                    "--model", "reference", "--n", "2", "--problems", ",".join(names[:2])) == 0
    new = set(run_folders(out)) - first
    assert len(new) == 2
    for folder in new:
        fields = storage.read_text(storage.join(folder, "_scores.csv")).splitlines()[1].split(",")
        assert fields[3] == "2", fields


@pytest.mark.parametrize("extra,message", [
    (["--k", "0"], "--k must be comma-separated positive integers"),
    (["--n", "0"], "--n must be at least 1"),
    (["--workers", "-1"], "--workers must be at least 1"),
    (["--timeout", "-1"], "--timeout must be positive"),
    (["--timeout", "inf"], "--timeout must be positive and at most 86400 seconds (one day), got inf"),
    (["--timeout", "nan"], "--timeout must be positive and at most 86400 seconds (one day), got nan"),
    (["--timeout", "1e20"], "--timeout must be positive and at most 86400 seconds (one day), got 1e+20"),
    (["--limit", "0"], "--limit must be at least 1"),
    (["--problems", ","], "--problems ',' names no problem"),
    (["--top-p", "2"], "bad sampling settings"),
    (["--temperature", "nan"], "bad sampling settings"),
    (["--epoch", "-3"], "--epoch must be >= 0"),
    (["--n", "2", "--k", "5"], "no k is at most --n 2"),
    ([], "the replay backend needs --replay-source"),
])
def test_bad_settings_stop_before_any_work(tmp_path, capsys, extra, message):
    out = tmp_path / "eval"
    replay = [] if not extra else ["--replay-source", str(tmp_path / "replay")]
    rc = cli.main(["evaluate", "--lang", LANGS, "--out", str(out), "--backend", "replay",
                   *replay, *extra])
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_benchmark_built_otherwise_is_not_reused(tmp_path, capsys):
    """evaluate reuses `<benchmarks>/<source>-<lang>.jsonl` when it exists: with a report saying
    it holds only part of the source (or another source or language), that is an error before
    any work, not a silently smaller evaluation."""
    from multiplt.benchmarks.build import build_benchmark

    benchmarks = tmp_path / "benchmarks"
    build_benchmark("humaneval", "lua", str(benchmarks / "humaneval-lua.jsonl"), limit=2)
    out = tmp_path / "eval"
    rc = cli.main(["evaluate", "--lang", "lua", "--out", str(out), "--benchmarks", str(benchmarks),
                   "--backend", "replay", "--replay-source", str(tmp_path / "replay")])
    assert rc == 2 and not out.exists()
    assert "was built from source 'humaneval', language 'lua', limit 2, not from all of" in capsys.readouterr().err


def test_a_jsonl_source_and_a_language_name_give_the_names_benchmark_build_gives(tmp_path, capsys):
    """`--source data/mini.jsonl` names the benchmark `mini` (its file `mini-<lang>.jsonl`, its
    run folder `mini-<lang>-...`, as the evaluate DAG names them), not `mini.jsonl` in a copy of
    the source's folders; `--lang racket` is the code `rkt` in every name (as in the build
    report and the results store), and in --replay-source's `{lang}`."""
    import json

    from multiplt.results.benchmarks import benchmark_name

    source = tmp_path / "data" / "mini.jsonl"
    source.parent.mkdir()
    source.write_text(json.dumps({
        "task_id": "Mini/0", "entry_point": "double", "canonical_solution": "    return 2 * x\n",
        "prompt": 'def double(x: int) -> int:\n    """Twice x."""\n',
        "test": "def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(0) == 0\n"
                "    assert candidate(-3) == -6\n"}) + "\n")
    replay = tmp_path / "replay"
    replay.mkdir()
    for code, body in (("rkt", "  (* 2 x))\n"), ("lua", "    return 2 * x\nend\n")):
        (replay / f"{code}.jsonl").write_text(json.dumps({"name": "Mini_0_double", "completion": body}) + "\n")
    out, benchmarks = tmp_path / "eval", tmp_path / "benchmarks"
    assert cli.main(["evaluate", "--lang", "racket,lua", "--source", str(source), "--out", str(out),
                     "--benchmarks", str(benchmarks), "--backend", "replay", "--model", "ref",
                     "--replay-source", str(replay / "{lang}.jsonl"), "--n", "1",
                     "--workers", "2"]) == 0
    table = capsys.readouterr().out
    assert sorted(p.name for p in benchmarks.iterdir()) == [
        "mini-lua.jsonl", "mini-lua.jsonl.report.json", "mini-rkt.jsonl", "mini-rkt.jsonl.report.json"]
    folders = sorted(p.name for p in out.iterdir())
    assert folders == ["mini-lua-ref-main-0.2", "mini-rkt-ref-main-0.2"], folders
    assert [line.split()[0] for line in table.splitlines()[2:]] == ["rkt", "lua"], table
    for code in ("rkt", "lua"):
        row = {"benchmark": str(benchmarks / f"mini-{code}.jsonl"), "lang": code,
               "dataset": f"mini-{code}-ref-main-0.2"}
        assert benchmark_name(row) == "mini"
        scores = (out / row["dataset"] / "_scores.csv").read_text().splitlines()[1].split(",")
        assert scores[2] == "1.0", (code, scores)
