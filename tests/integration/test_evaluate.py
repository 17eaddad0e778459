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


MINI = {  # name: (task_id, entry_point, factor): `def <name>(x)` returns factor * x
    "double": ("Mini/0", 2), "triple": ("Mini/1", 3)}


def write_source(path, names=("double",)):
    """A JSONL source of the MINI problems `names`."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        task_id, factor = MINI[name]
        rows.append(json.dumps({
            "task_id": task_id, "entry_point": name, "canonical_solution": f"    return {factor} * x\n",
            "prompt": f'def {name}(x: int) -> int:\n    """{factor} times x."""\n',
            "test": f"def check(candidate):\n    assert candidate(1) == {factor}\n"
                    f"    assert candidate(0) == 0\n    assert candidate(-3) == {-3 * factor}\n"}))
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def write_replay(folder, codes=("rkt", "lua")):
    """`folder/<code>.jsonl`: the right completion of every MINI problem in each language."""
    import json

    folder.mkdir()
    for code in codes:
        lines = []
        for name, (task_id, factor) in MINI.items():
            body = f"  (* {factor} x))\n" if code == "rkt" else f"    return {factor} * x\nend\n"
            lines.append(json.dumps({"name": f"{task_id.replace('/', '_')}_{name}", "completion": body}))
        (folder / f"{code}.jsonl").write_text("\n".join(lines) + "\n")
    return str(folder / "{lang}.jsonl")


def hashed(source: str) -> str:
    """The name the evaluate DAG gives a path source: its file's name and `_s<hash>`."""
    import hashlib

    return "mini_s" + hashlib.sha256(source.encode()).hexdigest()[:8]


def test_a_jsonl_source_and_a_language_name_give_the_names_benchmark_build_gives(tmp_path, capsys):
    """`--source data/mini.jsonl` names the benchmark `mini_s<hash of the source>` (its file
    `mini_s<hash>-<lang>.jsonl`, its run folder `mini_s<hash>-<lang>-...`, as the evaluate DAG
    names them), not `mini.jsonl` in a copy of the source's folders, and the results store reads
    `mini` back; `--lang racket` is the code `rkt` in every name (as in the build report and the
    results store), and in --replay-source's `{lang}`."""
    from multiplt.results.benchmarks import benchmark_name

    source = write_source(tmp_path / "data" / "mini.jsonl")
    replay = write_replay(tmp_path / "replay")
    out, benchmarks = tmp_path / "eval", tmp_path / "benchmarks"
    assert cli.main(["evaluate", "--lang", "racket,lua", "--source", source, "--out", str(out),
                     "--benchmarks", str(benchmarks), "--backend", "replay", "--model", "ref",
                     "--replay-source", replay, "--n", "1", "--workers", "2"]) == 0
    table = capsys.readouterr().out
    name = hashed(source)
    assert sorted(p.name for p in benchmarks.iterdir()) == [
        f"{name}-lua.jsonl", f"{name}-lua.jsonl.report.json", f"{name}-rkt.jsonl",
        f"{name}-rkt.jsonl.report.json"]
    folders = sorted(p.name for p in out.iterdir())
    assert folders == [f"{name}-lua-ref-main-0.2", f"{name}-rkt-ref-main-0.2"], folders
    assert [line.split()[0] for line in table.splitlines()[2:]] == ["rkt", "lua"], table
    for code in ("rkt", "lua"):
        row = {"benchmark": str(benchmarks / f"{name}-{code}.jsonl"), "lang": code,
               "dataset": f"{name}-{code}-ref-main-0.2"}
        assert benchmark_name(row) == "mini"
        scores = (out / row["dataset"] / "_scores.csv").read_text().splitlines()[1].split(",")
        assert scores[2] == "1.0", (code, scores)


def test_two_replay_sources_of_one_name_get_their_own_run_folders(tmp_path, capsys):
    """`right/{lang}.jsonl` and `wrong/{lang}.jsonl` without --model were both named `{lang}.jsonl`:
    one run folder, so evaluating the second found nothing missing and scored the first's
    completions as its own. Each source now has its own folder (replay_label) and score."""
    import json

    source = write_source(tmp_path / "data" / "mini.jsonl")
    right = write_replay(tmp_path / "right", codes=("lua",))
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "lua.jsonl").write_text("".join(
        json.dumps({**json.loads(line), "completion": "    return 0\nend\n"}) + "\n"
        for line in (tmp_path / "right" / "lua.jsonl").read_text().splitlines()))
    out = tmp_path / "eval"
    for replay in (right, str(wrong / "{lang}.jsonl")):
        assert cli.main(["evaluate", "--lang", "lua", "--source", source, "--out", str(out),
                         "--benchmarks", str(tmp_path / "benchmarks"), "--backend", "replay",
                         "--replay-source", replay, "--n", "1", "--workers", "2"]) == 0
    folders = sorted(p.name for p in out.iterdir())
    assert len(folders) == 2 and all("{" not in f for f in folders), folders
    scores = sorted((out / f / "_scores.csv").read_text().splitlines()[1].split(",")[2]
                    for f in folders)
    assert scores == ["0.0", "1.0"], (folders, scores)


def test_two_sources_of_one_file_name_get_their_own_benchmark_files_and_run_folders(tmp_path):
    """`data/v1/mini.jsonl` and `data/v2/mini.jsonl` once shared `<benchmarks>/mini-lua.jsonl`,
    so evaluate refused the second source (the file's report names the first); each now gets
    the file and run folders the evaluate DAG would give it, and the results store still counts
    both as the one benchmark `mini` (a part of one, `--limit 1`, as `mini_first1`)."""
    from multiplt.results import read_store
    from multiplt.results.benchmarks import benchmark_name

    one = write_source(tmp_path / "data" / "v1" / "mini.jsonl")
    two = write_source(tmp_path / "data" / "v2" / "mini.jsonl", names=("double", "triple"))
    replay = write_replay(tmp_path / "replay", codes=("lua",))
    out, benchmarks, store = tmp_path / "eval", tmp_path / "benchmarks", tmp_path / "results.parquet"
    common = ["--lang", "lua", "--out", str(out), "--benchmarks", str(benchmarks), "--backend", "replay",
              "--model", "ref", "--replay-source", replay, "--n", "1", "--workers", "2"]
    for source, extra in ((one, []), (two, []), (two, ["--limit", "1"])):
        assert cli.main(["evaluate", "--source", source, *common, *extra]) == 0, (source, extra)
    assert hashed(one) != hashed(two)
    assert sorted(p.name for p in benchmarks.iterdir()) == sorted(
        f"{hashed(s)}-lua.jsonl{ext}" for s in (one, two) for ext in ("", ".report.json"))
    assert len(storage.read_jsonl(str(benchmarks / f"{hashed(two)}-lua.jsonl"))) == 2
    folders = sorted(p.name for p in out.iterdir())
    assert folders == sorted([f"{hashed(one)}-lua-ref-main-0.2", f"{hashed(two)}-lua-ref-main-0.2",
                              f"{hashed(two)}_first1-lua-ref-main-0.2"]), folders
    for folder in folders:
        assert cli.main(["results", "record", "--scores", str(out / folder), "--store", str(store)]) == 0
    rows = read_store(str(store)).to_dicts()
    assert sorted((row["dataset"], benchmark_name(row), row["num_problems"]) for row in rows) == sorted([
        (f"{hashed(one)}-lua-ref-main-0.2", "mini", 1), (f"{hashed(two)}-lua-ref-main-0.2", "mini", 2),
        (f"{hashed(two)}_first1-lua-ref-main-0.2", "mini_first1", 1)])


def test_one_relative_path_from_two_folders_is_two_benchmarks(tmp_path, monkeypatch):
    """`--source data/mini.jsonl` from p1/ and from p2/ names two files: each gets its own
    benchmark file and run folder (named by the absolute path), not the first one's reused."""
    write_source(tmp_path / "p1" / "data" / "mini.jsonl")
    write_source(tmp_path / "p2" / "data" / "mini.jsonl", names=("double", "triple"))
    replay = write_replay(tmp_path / "replay", codes=("lua",))
    out, benchmarks = tmp_path / "eval", tmp_path / "benchmarks"
    for folder in ("p1", "p2"):
        monkeypatch.chdir(tmp_path / folder)
        assert cli.main(["evaluate", "--source", "data/mini.jsonl", "--lang", "lua", "--out", str(out),
                         "--benchmarks", str(benchmarks), "--backend", "replay", "--model", "ref",
                         "--replay-source", replay, "--n", "1", "--workers", "2"]) == 0, folder
    one, two = (str(tmp_path / p / "data" / "mini.jsonl") for p in ("p1", "p2"))
    assert len(storage.read_jsonl(str(benchmarks / f"{hashed(one)}-lua.jsonl"))) == 1
    assert len(storage.read_jsonl(str(benchmarks / f"{hashed(two)}-lua.jsonl"))) == 2
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{hashed(s)}-lua-ref-main-0.2" for s in (one, two))
