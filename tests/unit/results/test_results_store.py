"""The results store: rows per k, no duplicates on re-recording, labels, clear errors, locking,
the funnel it logs."""

import json
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from multiplt import cli
from multiplt.errors import MultipltError
from multiplt.results import COLUMNS, read_store, record_runs

HEADER = "Dataset,Pass@k,Estimate,NumProblems,MinCompletions,MaxCompletions\n"


def make_run(root: pathlib.Path, lang="rkt", model="org/tiny", revision="main", estimate=0.5,
             epoch=None, experiment=None, extra_k=False, name=None) -> str:
    name = name or f"humaneval-{lang}-{model.replace('/', '_')}-{revision}-0.2"
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    rows = f"{name},1,{estimate:.2f},4,2,2\n" + (f"{name},2,0.75,4,2,2\n" if extra_k else "")
    (folder / "_scores.csv").write_text(HEADER + rows)
    config = {"model": model, "revision": revision, "resolved_commit": "a" * 40, "tokenizer": model,
              "benchmark": str(root / f"humaneval-{lang}.jsonl"), "benchmark_sha256": "b" * 64,
              "lang": lang, "n": 2, "temperature": 0.2, "top_p": 0.95, "max_new_tokens": 128,
              "seed": 0, "backend": "replay", "experiment": experiment, "epoch": epoch}
    (folder / "_multiplt_run.yaml").write_text(yaml.safe_dump(config))
    return str(folder)


def test_record_writes_one_row_per_k_with_the_contract_columns(tmp_path):
    store = str(tmp_path / "results.parquet")
    run = make_run(tmp_path / "runs", extra_k=True)
    summary = record_runs([run], store)
    assert summary["added"] == 2 and summary["replaced"] == 0
    table = read_store(store)
    assert list(table.columns)[: len(COLUMNS)] == list(COLUMNS)
    assert table.height == 2
    row = table.filter(table["k"] == 1).row(0, named=True)
    assert row["estimate"] == 0.5 and row["num_problems"] == 4 and row["lang"] == "rkt"
    assert row["model"] == "org/tiny" and row["epoch"] == 0 and row["n"] == 2
    assert row["dataset"] == "humaneval-rkt-org_tiny-main-0.2"
    assert row["run_id"].startswith("humaneval-rkt-org_tiny-main-0.2@")
    assert row["created_at"].endswith("+00:00")


def test_recording_the_same_run_twice_does_not_duplicate(tmp_path):
    store = str(tmp_path / "results.parquet")
    run = make_run(tmp_path / "runs")
    record_runs([run], store)
    first = read_store(store).row(0, named=True)
    make_run(tmp_path / "runs", estimate=0.75)  # the folder was re-scored
    summary = record_runs([run], store)
    assert summary == {**summary, "added": 0, "replaced": 1, "rows": 1}
    again = read_store(store).row(0, named=True)
    assert again["estimate"] == 0.75
    assert again["created_at"] == first["created_at"]


def test_a_folder_generated_again_with_a_wider_selection_is_the_same_run(tmp_path):
    """generate lists the problems it selected in the run record (`--limit 2`, then the whole
    benchmark): the run's rows are replaced, not duplicated under a new run_id."""
    store = str(tmp_path / "results.parquet")
    run = make_run(tmp_path / "runs")
    record = pathlib.Path(run) / "_multiplt_run.yaml"
    config = yaml.safe_load(record.read_text())
    record.write_text(yaml.safe_dump({**config, "complete": True, "problems": ["p1", "p2"]}))
    record_runs([run], store)
    record.write_text(yaml.safe_dump({**config, "complete": True,
                                      "problems": ["p1", "p2", "p3", "p4"]}))
    summary = record_runs([run], store)
    assert (summary["added"], summary["replaced"], summary["rows"]) == (0, 1, 1)


def test_runs_with_other_labels_or_languages_are_separate_rows(tmp_path):
    store = str(tmp_path / "results.parquet")
    runs = tmp_path / "runs"
    record_runs([make_run(runs, lang="rkt"), make_run(runs, lang="lua")], store)
    ckpt = make_run(runs, model="file:///ckpt/rkt", revision="rkt-multiplt-epoch2", epoch=2,
                    experiment="multiplt")
    record_runs([ckpt], store)
    table = read_store(store)
    assert table.height == 3
    assert sorted(table["lang"].to_list()) == ["lua", "rkt", "rkt"]
    row = table.filter(table["epoch"] == 2).row(0, named=True)
    assert row["experiment"] == "multiplt" and row["revision"] == "rkt-multiplt-epoch2"


def test_overrides_win_over_the_run_config(tmp_path):
    store = str(tmp_path / "results.parquet")
    run = make_run(tmp_path / "runs", epoch=1, experiment="x")
    record_runs([run], store, experiment="multiplt", epoch=3)
    row = read_store(store).row(0, named=True)
    assert (row["experiment"], row["epoch"]) == ("multiplt", 3)


def test_record_logs_its_funnel_and_records_a_run_given_twice_once(tmp_path, capsys):
    store = tmp_path / "results.parquet"
    rkt = make_run(tmp_path / "runs", lang="rkt", extra_k=True)
    lua = make_run(tmp_path / "runs", lang="lua")
    argv = ["results", "record", "--scores", rkt, "--scores", lua, "--scores", rkt + "/", "--store", str(store)]
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"added": 3, "replaced": 0, "rows": 3}  # the line callers parse
    assert f"{rkt}: 2 pass@k rows (k=1, 2) of org/tiny, lang rkt, epoch 0\n" in err
    assert f"{lua}: 1 pass@k row (k=1) of org/tiny, lang lua, epoch 0\n" in err
    assert f"WARNING multiplt.results: {rkt}: given twice; its 2 rows recorded once\n" in err
    assert "results record funnel: in=5 kept=3 dropped=2 (run folder given again=2)\n" in err
    assert (f"{store}: 3 run folders, 5 pass@k rows read -> 3 recorded: 3 added, 0 replaced "
            "(recorded before), 2 skipped; the store holds 3 rows\n") in err
    assert read_store(str(store)).height == 3
    assert cli.main(["results", "record", "--scores", rkt, "--store", str(store)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"added": 0, "replaced": 2, "rows": 3}
    assert "results record funnel: in=2 kept=2 dropped=0 (none)\n" in err
    assert "1 run folder, 2 pass@k rows read -> 2 recorded: 0 added, 2 replaced (recorded before), 0 skipped" in err


def test_a_folder_given_three_times_is_counted_three_times(tmp_path, caplog):
    store = str(tmp_path / "results.parquet")
    rkt = make_run(tmp_path / "runs", extra_k=True)
    with caplog.at_level("INFO", logger="multiplt.results"):
        summary = record_runs([rkt, rkt, rkt], store)
    assert summary == {**summary, "added": 2, "rows": 2, "read": 6, "skipped": 4}
    assert f"{rkt}: given 3 times; its 2 rows recorded once" in caplog.text
    assert "in=6 kept=2 dropped=4 (run folder given again=4)" in caplog.text


def test_a_local_folder_spelled_two_ways_is_one_folder_given_twice(tmp_path, caplog, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = str(tmp_path / "results.parquet")
    absolute = make_run(tmp_path / "runs")
    relative = str(pathlib.Path(absolute).relative_to(tmp_path))
    (tmp_path / "link").symlink_to(tmp_path / "runs")
    linked = str(tmp_path / "link" / pathlib.Path(absolute).name)
    with caplog.at_level("INFO", logger="multiplt.results"):
        summary = record_runs([relative, absolute, "./" + relative + "/", linked], store)
    assert summary == {**summary, "added": 1, "rows": 1, "read": 4, "skipped": 3}
    assert (f"{linked}: given 4 times (as {relative}, {absolute}, ./{relative}, {linked}); its 1 "
            "row recorded once") in caplog.text
    assert "same run as" not in caplog.text
    assert "in=4 kept=1 dropped=3 (run folder given again=3)" in caplog.text
    assert read_store(store)["run_uri"].to_list() == [linked]


def test_a_folder_given_again_after_a_copy_of_its_run_is_given_again(tmp_path, caplog):
    """A, its copy B, A: B replaces A's row (the same run), then A is a folder given twice."""
    store = str(tmp_path / "results.parquet")
    first = make_run(tmp_path / "runs")
    copy = str(tmp_path / "copy" / pathlib.Path(first).name)
    shutil.copytree(first, copy)
    with caplog.at_level("INFO", logger="multiplt.results"):
        summary = record_runs([first, copy, first], store)
    assert summary == {**summary, "added": 1, "read": 3, "skipped": 2}
    assert read_store(store)["run_uri"].to_list() == [first]
    assert f"{first}: given twice; its 1 row recorded once" in caplog.text
    assert f"{first} is the same run as {copy} (same run_id): recording 1 row from the latter" in caplog.text
    assert "dropped=2 (run folder given again=1, same run as a later run folder=1)" in caplog.text


def test_two_folders_of_one_run_are_recorded_once_from_the_last(tmp_path, caplog):
    store = str(tmp_path / "results.parquet")
    first = make_run(tmp_path / "runs")
    copy = str(tmp_path / "copy" / pathlib.Path(first).name)
    shutil.copytree(first, copy)  # the same folder name and config: the same run_id
    with caplog.at_level("INFO", logger="multiplt.results"):
        summary = record_runs([first, copy], store)
    assert summary == {**summary, "added": 1, "replaced": 0, "rows": 1, "read": 2, "skipped": 1}
    assert read_store(store)["run_uri"].to_list() == [copy]
    assert f"{first} is the same run as {copy} (same run_id): recording 1 row from the latter" in caplog.text
    assert "in=2 kept=1 dropped=1 (same run as a later run folder=1)" in caplog.text


def test_a_scores_file_with_a_k_twice_is_refused(tmp_path):
    run = pathlib.Path(make_run(tmp_path / "runs"))
    (run / "_scores.csv").write_text(HEADER + f"{run.name},1,0.50,4,2,2\n{run.name},1,0.75,4,2,2\n")
    with pytest.raises(MultipltError, match=re.escape(f"{run}/_scores.csv has two rows for Pass@k 1 of {run.name}")):
        record_runs([str(run)], str(tmp_path / "results.parquet"))
    assert not (tmp_path / "results.parquet").exists()


def test_missing_scores_is_a_clear_error_and_writes_nothing(tmp_path):
    store = tmp_path / "results.parquet"
    run = pathlib.Path(make_run(tmp_path / "runs"))
    (run / "_scores.csv").unlink()
    with pytest.raises(MultipltError, match="_scores.csv does not exist"):
        record_runs([str(run)], str(store))
    assert not store.exists()


def test_missing_run_config_and_bad_csv_are_clear_errors(tmp_path):
    store = str(tmp_path / "results.parquet")
    run = pathlib.Path(make_run(tmp_path / "runs"))
    (run / "_multiplt_run.yaml").unlink()
    with pytest.raises(MultipltError, match="_multiplt_run.yaml does not exist"):
        record_runs([str(run)], store)
    run = pathlib.Path(make_run(tmp_path / "runs2"))
    (run / "_scores.csv").write_text("name,score\nx,1\n")
    with pytest.raises(MultipltError, match="header"):
        record_runs([str(run)], store)
    (run / "_scores.csv").write_text(HEADER + "x,1,1.5,4,2,2\n")
    with pytest.raises(MultipltError, match=r"not in \[0, 1\]"):
        record_runs([str(run)], store)


@pytest.mark.parametrize("change, message", [
    ({"lang": "cobol"}, "_multiplt_run.yaml: lang: unknown language 'cobol'"),
    ({"epoch": -7}, "_multiplt_run.yaml: epoch must be >= 0, got -7"),
    ({"n": "lots"}, "_multiplt_run.yaml: n 'lots' is not an integer"),
    ({"seed": 1.5}, "_multiplt_run.yaml: seed 1.5 is not an integer"),
])
def test_a_run_config_with_a_bad_value_names_the_file_and_the_key(tmp_path, change, message):
    run = pathlib.Path(make_run(tmp_path / "runs"))
    config = yaml.safe_load((run / "_multiplt_run.yaml").read_text())
    (run / "_multiplt_run.yaml").write_text(yaml.safe_dump({**config, **change}))
    with pytest.raises(MultipltError, match=re.escape(message)):
        record_runs([str(run)], str(tmp_path / "results.parquet"))
    assert not (tmp_path / "results.parquet").exists()


def test_a_scores_row_with_a_count_below_one_is_refused(tmp_path):
    run = pathlib.Path(make_run(tmp_path / "runs"))
    (run / "_scores.csv").write_text(HEADER + f"{run.name},-1,0.5,4,2,2\n")
    with pytest.raises(MultipltError, match="line 2: Pass@k, NumProblems, MinCompletions, MaxCompletions must be"):
        record_runs([str(run)], str(tmp_path / "results.parquet"))


def test_a_store_path_under_a_file_or_at_a_folder_is_refused_and_leaves_no_lock(tmp_path):
    run = make_run(tmp_path / "runs")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(MultipltError, match="afile is a file, not a folder"):
        record_runs([run], str(tmp_path / "afile" / "store.parquet"))
    (tmp_path / "folder").mkdir()
    with pytest.raises(MultipltError, match="is a folder; give a .parquet file"):
        record_runs([run], str(tmp_path / "folder"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "folder", "runs"]


def test_one_bad_run_among_several_records_none(tmp_path):
    store = tmp_path / "results.parquet"
    good = make_run(tmp_path / "runs", lang="rkt")
    bad = pathlib.Path(make_run(tmp_path / "runs", lang="lua"))
    (bad / "_scores.csv").write_text(HEADER)
    with pytest.raises(MultipltError, match="no pass@k rows"):
        record_runs([good, str(bad)], str(store))
    assert not store.exists()


def record_in_processes(runs: list[str], store: str) -> None:
    """`multiplt results record` of each run in a process of its own, all at once (as the DAG's
    tasks); each must exit 0."""
    procs = [subprocess.Popen([sys.executable, "-m", "multiplt", "results", "record", "--scores", run,
                               "--store", store], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for run in runs]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()


@pytest.mark.slow
def test_concurrent_writers_lose_no_rows(tmp_path):
    store = str(tmp_path / "results.parquet")
    runs = [make_run(tmp_path / "runs", lang=lang) for lang in ("rkt", "lua", "r")]
    record_in_processes(runs, store)
    assert read_store(store).height == len(runs)


def test_cli_record_and_show(tmp_path, capsys):
    store = str(tmp_path / "results.parquet")
    run = make_run(tmp_path / "runs")
    assert cli.main(["results", "record", "--scores", run, "--store", store, "--epoch", "0"]) == 0
    assert '"added": 1' in capsys.readouterr().out
    assert cli.main(["results", "show", "--store", store]) == 0
    out = capsys.readouterr().out
    assert "org/tiny" in out and "0.5000" in out and "rkt" in out
    assert cli.main(["results", "show", "--store", store, "--format", "csv", "--k", "1"]) == 0
    assert capsys.readouterr().out.startswith("run_id,dataset,")


def test_cli_errors_exit_2_with_one_line(tmp_path, capsys):
    assert cli.main(["results", "record", "--scores", str(tmp_path / "nope"),
                     "--store", str(tmp_path / "s.parquet")]) == 2
    err = capsys.readouterr().err
    assert "multiplt results: error:" in err and "_scores.csv does not exist" in err
    assert cli.main(["results", "show", "--store", str(tmp_path / "s.parquet")]) == 2


@pytest.mark.parametrize("label", ["Bad Exp/..", "", "multiplt\n", "a-b"])
def test_a_bad_experiment_label_is_refused_with_one_line(tmp_path, capsys, label):
    """As `train --experiment` takes it: a-z, 0-9 and _ only (it was stored as given)."""
    store = tmp_path / "s.parquet"
    run = make_run(tmp_path / "runs")
    assert cli.main(["results", "record", "--scores", run, "--store", str(store),
                     "--experiment", label]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"--experiment {label!r}: an experiment label is one or more of a-z, 0-9 and _" in err
    assert not store.exists()


def test_a_run_record_with_a_bad_experiment_label_is_refused_unless_relabelled(tmp_path, capsys):
    store = tmp_path / "s.parquet"
    run = make_run(tmp_path / "runs", experiment="My Exp")
    argv = ["results", "record", "--scores", run, "--store", str(store)]
    assert cli.main(argv) == 2
    assert "_multiplt_run.yaml: experiment 'My Exp': an experiment label is one or more of a-z, " \
           "0-9 and _ (as `train --experiment`); record the run with --experiment NAME" in capsys.readouterr().err
    assert not store.exists()
    assert cli.main([*argv, "--experiment", "my_exp"]) == 0
    assert read_store(str(store))["experiment"].to_list() == ["my_exp"]


@pytest.mark.parametrize("k", ["-1", "0"])
def test_show_refuses_a_k_below_one(tmp_path, capsys, k):
    """It printed an empty table (no row has such a k) with exit 0."""
    store = str(tmp_path / "results.parquet")
    record_runs([make_run(tmp_path / "runs")], store)
    capsys.readouterr()
    assert cli.main(["results", "show", "--store", store, "--k", k]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert f"--k must be a positive whole number (a pass@k's k), got {k}" in captured.err


def test_s3_store_records_without_duplicates(s3_bucket):
    from multiplt import storage

    run_dir = f"{s3_bucket}/runs/humaneval-lua-org_tiny-main-0.2"
    storage.write_text(f"{run_dir}/_scores.csv", HEADER + "humaneval-lua-org_tiny-main-0.2,1,0.50,4,2,2\n")
    storage.write_text(f"{run_dir}/_multiplt_run.yaml",
                       yaml.safe_dump({"model": "org/tiny", "lang": "lua", "n": 2, "temperature": 0.2}))
    store = f"{s3_bucket}/results/results.parquet"
    assert record_runs([run_dir], store)["added"] == 1
    assert record_runs([run_dir], store) == {**record_runs([run_dir], store), "added": 0, "replaced": 1}
    table = read_store(store)
    assert table.height == 1 and table["run_uri"][0] == run_dir


@pytest.mark.parametrize("columns", [{"x": [1, 2]}, {}], ids=["foreign", "no-columns"])
def test_a_parquet_without_the_key_columns_is_not_a_results_store(tmp_path, capsys, columns):
    import polars as pl

    store = tmp_path / "foreign.parquet"
    pl.DataFrame(columns).write_parquet(store)
    before = store.read_bytes()
    with pytest.raises(MultipltError, match=r"not a results store: it has no run_id, k columns"):
        read_store(str(store))
    run = make_run(tmp_path / "runs")
    assert cli.main(["results", "record", "--scores", run, "--store", str(store)]) == 2
    assert "not a results store" in capsys.readouterr().err
    assert store.read_bytes() == before  # the foreign file is left as it was
    assert cli.main(["results", "show", "--store", str(store)]) == 2
    assert "not a results store" in capsys.readouterr().err


@pytest.mark.parametrize("step", ["makedirs", "lock"])
def test_a_read_only_store_location_is_one_clear_error(tmp_path, capsys, monkeypatch, step):
    """Root ignores permission bits, so the read-only file system is injected where the store's
    folder or its lock file is created (as tests/unit/storage/test_local_write_errors.py does)."""
    import builtins
    import errno
    import os

    run = make_run(tmp_path / "runs")
    store = tmp_path / "ro" / "sub" / "s.parquet"
    real_open = builtins.open

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    def open_refusing_the_lock(file, *args, **kwargs):
        if str(file).endswith(".lock"):
            refuse()
        return real_open(file, *args, **kwargs)

    if step == "makedirs":
        monkeypatch.setattr(os, "makedirs", refuse)
    else:
        monkeypatch.setattr(builtins, "open", open_refusing_the_lock)
    assert cli.main(["results", "record", "--scores", run, "--store", str(store)]) == 2
    err = capsys.readouterr().err.splitlines()  # the run folders read, logged, then the error
    assert err[-1] == f"multiplt results: error: cannot write {store}: Read-only file system"
    assert not any("error" in line.lower() for line in err[:-1])
    monkeypatch.undo()
    assert not store.exists() and not pathlib.Path(f"{store}.lock").exists()


def test_a_relative_run_folder_is_recorded_absolute_as_the_same_run(tmp_path, monkeypatch, capsys):
    """`--scores gen-lua` in /w records run_uri /w/gen-lua (what the leaderboard's run page reads
    from any folder): the same row, same run_id, as recording /w/gen-lua; URIs stay as written."""
    work = tmp_path / "w"
    absolute = make_run(work, lang="lua")
    name = pathlib.Path(absolute).name
    store = str(tmp_path / "results.parquet")
    monkeypatch.chdir(work)
    assert cli.main(["results", "record", "--scores", name + "/", "--store", store]) == 0
    assert json.loads(capsys.readouterr().out) == {"added": 1, "replaced": 0, "rows": 1}
    [row] = read_store(store).to_dicts()
    assert row["run_uri"] == absolute
    monkeypatch.chdir(tmp_path)
    assert cli.main(["results", "record", "--scores", absolute, "--store", store]) == 0
    assert json.loads(capsys.readouterr().out) == {"added": 0, "replaced": 1, "rows": 1}
    [again] = read_store(store).to_dicts()
    assert (again["run_id"], again["run_uri"]) == (row["run_id"], absolute)
    record_runs(["file://" + absolute], store)
    assert read_store(store)["run_uri"].to_list() == ["file://" + absolute]


def test_a_file_given_as_scores_names_the_run_folder_to_give(tmp_path, monkeypatch, capsys):
    run = make_run(tmp_path / "runs", lang="lua")
    name = pathlib.Path(run).name
    store = tmp_path / "results.parquet"
    monkeypatch.chdir(tmp_path / "runs")
    for given, folder in ((f"{name}/_scores.csv", name), (f"{run}/_multiplt_run.yaml", run),
                          ("../runs/" + name + "/_scores.csv", "../runs/" + name)):
        assert cli.main(["results", "record", "--scores", given, "--store", str(store)]) == 2
        err = capsys.readouterr().err
        assert (f"multiplt results: error: {given} is a file, not a run folder: --scores takes the run "
                f"folder (the folder holding _scores.csv and _multiplt_run.yaml), e.g. {folder}\n") in err, err
        assert "/_scores.csv/_scores.csv" not in err and not store.exists()
    (tmp_path / "runs" / "notes.txt").write_text("x")
    with pytest.raises(MultipltError, match=r"^notes.txt is a file, not a run folder: .*, e\.g\. \.$"):
        record_runs(["notes.txt"], str(store))
