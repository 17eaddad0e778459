"""What a recorded run covered: a run on part of its benchmark (generate --limit/--problems, a
benchmark file built with --limit/--problems) is a benchmark of its own on the leaderboard, the
results card and `publish checkpoints --tags best`, also for runs made with the CLI rather than
the DAG; a run not wholly scored is refused unless --allow-partial; --epoch relabels a run.
The run folders are made by generate (replay backend) with a hand-written _scores.csv."""

from __future__ import annotations

import json
import pathlib
import sys

import pytest
import yaml

from multiplt import cli, storage
from multiplt.errors import MultipltError
from multiplt.evaluation.run_folder import selection_marker
from multiplt.generation.driver import generate
from multiplt.results import read_store, record_runs
from multiplt.results.benchmarks import benchmark_name

PLUGINS = pathlib.Path(__file__).resolve().parents[3] / "plugins"
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))

HEADER = "Dataset,Pass@k,Estimate,NumProblems,MinCompletions,MaxCompletions\n"
NAMES = [f"HumanEval_{i}_f" for i in range(5)]  # name order is file order


def write_benchmark(path: pathlib.Path, names=NAMES, report: dict | None = None) -> str:
    rows = [{"name": n, "language": "lua", "prompt": f"local function {n}(x)\n", "tests": "\n",
             "stop_tokens": ["\nlocal"]} for n in names]
    storage.write_jsonl(str(path), rows)
    if report is not None:
        storage.write_json(str(path) + ".report.json", {"config": report})
    replay = path.parent / "replay.jsonl"
    storage.write_jsonl(str(replay), [{"name": n, "completion": f"  return x + {j}\nend\n"}
                                      for n in names for j in range(2)])
    return str(path)


def scored_run(bench: str, out: pathlib.Path, estimate: float, num_problems: int, **selection) -> str:
    generate(bench, str(out), backend="replay", replay_source=str(pathlib.Path(bench).parent / "replay.jsonl"),
             model="replayed", n=2, **selection)
    (out / "_scores.csv").write_text(HEADER + f"{out.name},1,{estimate},{num_problems},2,2\n")
    return str(out)


def without_selection(run: str) -> str:
    """The run folder's record as generate wrote it before it kept `selection`."""
    record = pathlib.Path(run) / "_multiplt_run.yaml"
    config = yaml.safe_load(record.read_text())
    del config["selection"]
    record.write_text(yaml.safe_dump(config, sort_keys=False))
    return run


def board_cell(store: str) -> tuple[list[str], dict]:
    from multiplt_leaderboard import board

    rows = board.load_rows(store)
    return [b["name"] for b in board.benchmarks(rows)], board.board(rows, 1)[1][0]["cells"]["lua"]


#: the selection generate keeps in the run record, and the one `results record` derives from the
#: benchmark file for a record written before generate kept it: the same
KEPT_OR_DERIVED = pytest.mark.parametrize("old_record", [False, True], ids=["kept", "derived"])


@KEPT_OR_DERIVED
def test_a_smoke_run_is_a_benchmark_of_its_own_and_never_takes_the_full_runs_cell(tmp_path, old_record):
    """generate --limit 1 and a full generate from one benchmark file, the smoke run recorded
    last: the board shows the full run (0.6 over 5), the smoke run is `weird_first1`."""
    bench = write_benchmark(tmp_path / "weird-lua.jsonl")
    store = str(tmp_path / "results.parquet")
    full = scored_run(bench, tmp_path / "full", 0.6, 5)
    smoke = scored_run(bench, tmp_path / "smoke", 0.5, 1, limit=1)
    picked = scored_run(bench, tmp_path / "picked", 0.4, 2, problems="HumanEval_3_f,HumanEval_1_f")
    if old_record:
        full, smoke, picked = map(without_selection, (full, smoke, picked))
    record_runs([full], store)
    record_runs([smoke, picked], store)
    rows = {r["dataset"]: r for r in read_store(store).to_dicts()}
    assert {d: benchmark_name(r) for d, r in rows.items()} == {
        "full": "weird", "smoke": "weird_first1",
        # as the DAG names --problems: the hash of the sorted names
        "picked": "weird" + selection_marker(None, "HumanEval_1_f,HumanEval_3_f")}
    assert rows["full"]["selection"] == ""
    names, cell = board_cell(store)
    assert names[0] == "weird" and (cell["estimate"], cell["num_problems"]) == (0.6, 5)


def test_a_folder_generated_again_over_the_whole_benchmark_becomes_the_full_run(tmp_path):
    """The run record's problems (the union of every generate into the folder) say what it
    covered: a smoke run widened to the whole file replaces its rows (one run_id) under the
    full benchmark's name."""
    bench = write_benchmark(tmp_path / "weird-lua.jsonl")
    store = str(tmp_path / "results.parquet")
    run = scored_run(bench, tmp_path / "run", 0.5, 1, limit=1)
    record_runs([run], store)
    assert benchmark_name(read_store(store).row(0, named=True)) == "weird_first1"
    scored_run(bench, tmp_path / "run", 0.6, 5)
    summary = record_runs([run], store)
    assert (summary["added"], summary["replaced"], summary["rows"]) == (0, 1, 1)
    assert benchmark_name(read_store(store).row(0, named=True)) == "weird"


@KEPT_OR_DERIVED
def test_a_benchmark_file_built_from_part_of_its_source_is_marked_unless_its_name_says_so(tmp_path,
                                                                                         old_record):
    """`benchmark build --limit 2 --out weird-lua.jsonl` (its report says limit 2): `weird_first2`;
    the DAG's `humaneval_first5-lua.jsonl` (built with --limit 5) stays `humaneval_first5`."""
    store = str(tmp_path / "results.parquet")
    cli_built = write_benchmark(tmp_path / "a" / "weird-lua.jsonl", NAMES[:2], {"limit": 2, "problems": None})
    dag_built = write_benchmark(tmp_path / "b" / "humaneval_first5-lua.jsonl", NAMES, {"limit": 5, "problems": None})
    picked = write_benchmark(tmp_path / "c" / "mbpp-lua.jsonl", NAMES[1:3],
                             {"limit": None, "problems": ["HumanEval_2_f", "HumanEval_1_f"]})
    runs = [scored_run(cli_built, tmp_path / "a" / "run", 0.5, 2),
            scored_run(dag_built, tmp_path / "b" / "humaneval_first5-lua-replayed-main-0.2", 0.5, 5),
            scored_run(picked, tmp_path / "c" / "run", 0.5, 2)]
    if old_record:
        runs = [without_selection(run) for run in runs]
    record_runs(runs, store)
    assert sorted(benchmark_name(r) for r in read_store(store).to_dicts()) == sorted([
        "weird_first2", "humaneval_first5", "mbpp" + selection_marker(None, "HumanEval_1_f,HumanEval_2_f")])


@KEPT_OR_DERIVED
def test_evaluates_folder_marker_names_the_part_as_the_dag_does(tmp_path, old_record):
    """`multiplt evaluate --problems` marks the run folder `_p<hash>`; where the picked problems
    happen to be the file's first ones the name stays the folder's, not `_first2`."""
    bench = write_benchmark(tmp_path / "humaneval-lua.jsonl")
    marker = selection_marker(None, "HumanEval_0_f,HumanEval_1_f")
    run = scored_run(bench, tmp_path / f"humaneval{marker}-lua-replayed-main-0.2", 0.5, 2,
                     problems="HumanEval_0_f,HumanEval_1_f")
    if old_record:
        without_selection(run)
    store = str(tmp_path / "results.parquet")
    record_runs([run], store)
    assert benchmark_name(read_store(store).row(0, named=True)) == "humaneval" + marker


def test_a_benchmark_that_cannot_be_read_or_changed_is_a_warning_and_the_folder_names_it(tmp_path, caplog):
    """For a record without `selection` (written before generate kept it) the part is read from
    the benchmark file; where it cannot be, the folder's name tells it."""
    bench = write_benchmark(tmp_path / "weird-lua.jsonl")
    run = without_selection(scored_run(bench, tmp_path / "weird_first1-lua-replayed-main-0.2", 0.5, 1,
                                       limit=1))
    store = str(tmp_path / "results.parquet")
    storage.write_jsonl(bench, [{"name": "other"}])  # rebuilt since: not the file generate read
    record_runs([run], store)
    assert "changed since generate read it" in caplog.text
    row = read_store(store).row(0, named=True)
    assert row["selection"] is None and benchmark_name(row) == "weird_first1"
    pathlib.Path(bench).unlink()
    record_runs([run], store)
    assert "weird-lua.jsonl does not exist; its rows count as benchmark weird_first1" in caplog.text


def test_a_relative_benchmark_path_is_found_above_the_run_folder(tmp_path, monkeypatch):
    """generate was run in /w with `--benchmark bench/weird-lua.jsonl --out runs/smoke` (before
    it kept the selection in the run record), and the run is recorded from elsewhere: the file
    is found under a folder above the run folder (the one generate read: its sha256)."""
    work = tmp_path / "w"
    (work / "bench").mkdir(parents=True)
    write_benchmark(work / "bench" / "weird-lua.jsonl")
    monkeypatch.chdir(work)
    (work / "runs").mkdir()
    run = without_selection(scored_run("bench/weird-lua.jsonl", work / "runs" / "smoke", 0.5, 1, limit=1))
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "bench").mkdir(parents=True)
    storage.write_jsonl(str(elsewhere / "bench" / "weird-lua.jsonl"), [{"name": "other"}])  # not it
    monkeypatch.chdir(elsewhere)
    store = str(tmp_path / "results.parquet")
    record_runs([run], store)
    assert benchmark_name(read_store(store).row(0, named=True)) == "weird_first1"


def test_rows_of_a_store_without_the_selection_column_keep_their_names(tmp_path):
    """A store written before `selection` existed reads as null there: the folder's marker, as
    before."""
    import polars as pl

    store = str(tmp_path / "old.parquet")
    pl.DataFrame([{"run_id": "a@1", "k": 1, "dataset": "humaneval_first5-lua-m-main-0.2",
                   "benchmark": "/d/benchmarks/humaneval-lua.jsonl", "lang": "lua", "estimate": 0.5,
                   "model": "m", "epoch": 0}]).write_parquet(store)
    row = read_store(store).row(0, named=True)
    assert row["selection"] is None and benchmark_name(row) == "humaneval_first5"


def partial_run(tmp_path, name="run") -> str:
    bench = write_benchmark(tmp_path / "weird-lua.jsonl")
    run = scored_run(bench, tmp_path / name, 0.6, 5)
    record = tmp_path / name / "_multiplt_run.yaml"
    record.write_text(record.read_text().replace("complete: true", "complete: false"))
    return run


def test_an_incomplete_run_is_refused_unless_allow_partial_and_then_is_marked(tmp_path, capsys):
    run = partial_run(tmp_path)
    store = tmp_path / "results.parquet"
    argv = ["results", "record", "--scores", run, "--store", str(store)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"{run} is not a complete run: its run record says complete: false" in err
    assert "record it with --allow-partial" in err and "nothing recorded" in err
    assert not store.exists()
    assert cli.main([*argv, "--allow-partial"]) == 0
    assert "not a complete run" in capsys.readouterr().err  # a warning
    row = read_store(str(store)).row(0, named=True)
    assert benchmark_name(row) == "weird_partial"
    # finished and scored again: the same run (one run_id), now under the full benchmark's name
    record = pathlib.Path(run) / "_multiplt_run.yaml"
    record.write_text(record.read_text().replace("complete: false", "complete: true"))
    assert cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out) == {"added": 0, "replaced": 1, "rows": 1}
    assert benchmark_name(read_store(str(store)).row(0, named=True)) == "weird"


def test_scores_covering_fewer_problems_than_generate_selected_are_partial(tmp_path):
    bench = write_benchmark(tmp_path / "weird-lua.jsonl")
    run = scored_run(bench, tmp_path / "run", 0.6, 3)  # 5 selected, 3 scored (--allow-partial)
    with pytest.raises(MultipltError, match=r"its pass@1 covers 3 of the 5 problems `multiplt generate` selected"):
        record_runs([run], str(tmp_path / "results.parquet"))
    record_runs([run], str(tmp_path / "results.parquet"), allow_partial=True)
    assert read_store(str(tmp_path / "results.parquet")).row(0, named=True)["selection"] == "_partial"


def test_recording_a_run_again_with_another_epoch_replaces_its_rows(tmp_path):
    """--epoch relabels the run (it is the checkpoint's epoch, not a second measurement), while
    another --experiment adds rows: one base model's folder is shared by the experiments."""
    bench = write_benchmark(tmp_path / "weird-lua.jsonl")
    run = scored_run(bench, tmp_path / "run", 0.6, 5)
    store = str(tmp_path / "results.parquet")
    record_runs([run], store)
    first = read_store(store).row(0, named=True)
    summary = record_runs([run], store, epoch=3)
    assert (summary["added"], summary["replaced"], summary["rows"]) == (0, 1, 1)
    again = read_store(store).row(0, named=True)
    assert again["epoch"] == 3 and again["run_id"] == first["run_id"]
    assert again["created_at"] == first["created_at"]
    summary = record_runs([run], store, experiment="other")
    assert (summary["added"], summary["rows"]) == (1, 2)


def test_run_ids_of_complete_runs_are_unchanged(tmp_path):
    """Rows recorded before these rules keep their run_id when recorded again: the hash still
    covers the config as it was (complete: true, the config's epoch label; without the
    `selection` and `provenance` generate now keeps)."""
    import hashlib

    bench = write_benchmark(tmp_path / "weird-lua.jsonl")
    run = scored_run(bench, tmp_path / "run", 0.6, 5)
    config = yaml.safe_load((pathlib.Path(run) / "_multiplt_run.yaml").read_text())
    config = {k: v for k, v in config.items() if k not in ("problems", "selection", "provenance")}
    canonical = json.dumps({**config, "experiment": None, "epoch": 0}, sort_keys=True, default=str)
    store = str(tmp_path / "results.parquet")
    record_runs([run], store)
    assert read_store(store).row(0, named=True)["run_id"] == (
        "run@" + hashlib.sha256(canonical.encode()).hexdigest()[:12])


def test_the_run_record_keeps_the_selection_so_record_needs_no_benchmark_file(tmp_path, caplog):
    """generate records the part of its benchmark the folder covers (`selection`, over every
    generate into it), so `results record` names the benchmark when the file is gone or was
    rebuilt since, without a warning."""
    bench = write_benchmark(tmp_path / "weird-lua.jsonl")
    run = scored_run(bench, tmp_path / "run", 0.5, 1, limit=1)
    record = pathlib.Path(run) / "_multiplt_run.yaml"
    assert yaml.safe_load(record.read_text())["selection"] == "_first1"
    pathlib.Path(bench).unlink()
    store = str(tmp_path / "results.parquet")
    record_runs([run], store)
    row = read_store(store).row(0, named=True)
    assert row["selection"] == "_first1" and benchmark_name(row) == "weird_first1"
    assert "cannot tell which part" not in caplog.text
    write_benchmark(tmp_path / "weird-lua.jsonl")
    scored_run(bench, tmp_path / "run", 0.6, 5, problems="HumanEval_4_f,HumanEval_2_f")
    assert yaml.safe_load(record.read_text())["selection"] == selection_marker(
        None, "HumanEval_0_f,HumanEval_2_f,HumanEval_4_f")  # the union of both generates
    scored_run(bench, tmp_path / "run", 0.6, 5)
    assert yaml.safe_load(record.read_text())["selection"] == ""
    storage.write_jsonl(bench, [{"name": "other"}])  # rebuilt since: not the file generate read
    record_runs([run], store)
    assert read_store(store).row(0, named=True)["selection"] == "" and "cannot tell" not in caplog.text


def test_a_run_record_with_a_malformed_selection_is_refused(tmp_path):
    bench = write_benchmark(tmp_path / "weird-lua.jsonl")
    run = scored_run(bench, tmp_path / "run", 0.6, 5)
    record = pathlib.Path(run) / "_multiplt_run.yaml"
    record.write_text(record.read_text().replace("selection: ''", "selection: _first"))
    with pytest.raises(MultipltError, match=r"_multiplt_run\.yaml: selection '_first' is not"):
        record_runs([run], str(tmp_path / "results.parquet"))


@pytest.mark.parametrize("file,dataset,selection,expected", [
    ("mbpp_s0123abcd-lua.jsonl", "mbpp_s0123abcd-lua-m-main-0.2", "", "mbpp"),
    ("mbpp_s0123abcd_first5-lua.jsonl", "mbpp_s0123abcd_first5_g89abcdef-lua-m-main-0.2", None,
     "mbpp_first5_g89abcdef"),
    ("mbpp_s0123abcd_first5-lua.jsonl", "mbpp_s0123abcd_first5-lua-m-main-0.2", "", "mbpp_first5"),
])
def test_the_dags_source_hash_is_not_part_of_the_boards_name(file, dataset, selection, expected):
    """The DAG's `_s<hash>` keeps two sources of one file name apart in storage; the board names
    the benchmark after the source's file, as `multiplt evaluate --source` does."""
    row = {"benchmark": f"s3://b/runs/benchmarks/{file}", "lang": "lua", "dataset": dataset,
           "selection": selection}
    assert benchmark_name(row) == expected
