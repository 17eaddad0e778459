"""Bad input (issue 15, point 7): one clear error, exit 2, nothing written."""

import polars as pl
import pytest

from multiplt import cli
from tests.fixtures import translate as fx


@pytest.fixture
def inputs(tmp_path):
    return fx.write(tmp_path / "in")


def translate(inputs, out, *extra):
    return cli.main(["translate", "--tests", inputs["tests"], "--out", str(out), "--backend", "replay",
                     "--replay-source", inputs["replay"], "--n", "7", *extra])


@pytest.mark.parametrize("extra, message", [
    (["--lang", "rkt,cobol"], "unknown language 'cobol'"),
    (["--lang", "py"], "--lang py"),
    (["--lang", "rkt", "--rouge-threshold", "0"], "--rouge-threshold must be in (0, 1], got 0.0"),
    (["--lang", "rkt", "--rouge-threshold", "1.5"], "--rouge-threshold must be in (0, 1], got 1.5"),
    (["--lang", "rkt", "--rouge-threshold", "-0.2"], "--rouge-threshold must be in (0, 1]"),
    (["--lang", "rkt", "--shard", "2/2"], "--shard 2/2"),
    (["--lang", "rkt", "--n", "0"], "--n must be at least 1"),
    (["--lang", "rkt", "--n", "10001"], "--n must be at most 10000, got 10001"),
    (["--lang", "rkt", "--shard", "0/100001"], "--shard 0/100001: N is at most 100000"),
    (["--lang", "rkt", "--max-new-tokens", "0"], "--max-new-tokens must be at least 1"),
    (["--lang", "rkt", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["--lang", "rkt", "--workers", "-1"], "--workers must be at least 1, got -1"),
    (["--lang", "rkt", "--timeout", "-1"], "--timeout must be positive"),
    (["--lang", "rkt", "--timeout", "nan"], "--timeout must be positive and at most 86400 seconds (one day), got nan"),
    (["--lang", "rkt", "--timeout", "inf"], "--timeout must be positive and at most 86400 seconds (one day), got inf"),
    (["--lang", "rkt", "--rouge-threshold", "nan"], "--rouge-threshold must be in (0, 1], got nan"),
])
def test_bad_flags(inputs, tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    assert translate(inputs, out, *extra) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("error:") == 1
    assert not out.exists()


def test_tests_dataset_without_the_columns(inputs, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    pl.DataFrame([{k: v for k, v in r.items() if k not in ("content_with_types", "entrypoint")}
                  for r in fx.ROWS]).write_parquet(bad / "part.parquet")
    out = tmp_path / "out"
    rc = cli.main(["translate", "--tests", str(bad), "--out", str(out), "--lang", "rkt", "--backend",
                   "replay", "--replay-source", inputs["replay"]])
    assert rc == 2
    assert "lacks the column(s) content_with_types, entrypoint" in capsys.readouterr().err
    assert not out.exists()


def test_malformed_record_and_missing_dataset(inputs, tmp_path, capsys):
    bad = tmp_path / "bad.parquet"
    rows = [dict(r) for r in fx.ROWS]
    rows[2]["sha1"] = None
    pl.DataFrame(rows).write_parquet(bad)
    out = tmp_path / "out"
    base = ["translate", "--out", str(out), "--lang", "rkt", "--backend", "replay",
            "--replay-source", inputs["replay"]]
    assert cli.main(base + ["--tests", str(bad)]) == 2
    assert "row 2: malformed record (sha1)" in capsys.readouterr().err
    rows[2]["sha1"] = "../../escape"  # it would name a completion file outside OUT
    pl.DataFrame(rows).write_parquet(bad)
    assert cli.main(base + ["--tests", str(bad)]) == 2
    assert "row 2: malformed record (sha1 '../../escape' is not a plain file name" in capsys.readouterr().err
    assert not list(tmp_path.rglob("escape*"))
    assert cli.main(base + ["--tests", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not out.exists()


def test_a_dataset_whose_every_row_is_malformed_is_refused(inputs, tmp_path, capsys):
    """As testgen: every row malformed (no function of its entrypoint) is one error naming the
    dataset and the first row's reason, before anything is written; one good row among them
    (in another shard, even) runs, the others dropped at the build."""
    bad = tmp_path / "bad.parquet"
    rows = [dict(r, content="45") for r in fx.ROWS]
    pl.DataFrame(rows).write_parquet(bad)
    out = tmp_path / "out"
    base = ["translate", "--out", str(out), "--lang", "rkt", "--backend", "replay",
            "--replay-source", inputs["replay"], "--n", "7", "--stage", "sample"]
    assert cli.main(base + ["--tests", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"tests dataset {bad}: all {len(rows)} rows are malformed" in err
    assert (f"the first ({bad} row 0, id {rows[0]['id']!r}): content defines no top-level function "
            f"{rows[0]['entrypoint']}") in err
    assert not out.exists()
    rows[-1] = dict(fx.ROWS[-1])
    pl.DataFrame(rows).write_parquet(bad)
    good_shard = sorted(r["sha1"] for r in fx.ROWS).index(rows[-1]["sha1"]) % 2
    assert cli.main(base + ["--tests", str(bad), "--shard", f"{1 - good_shard}/2"]) == 0


def test_replay_without_source_and_model_without_backend(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["translate", "--tests", inputs["tests"], "--out", str(out), "--lang", "rkt",
                     "--backend", "replay"]) == 2
    assert "needs --replay-source" in capsys.readouterr().err
    assert cli.main(["translate", "--tests", inputs["tests"], "--out", str(out), "--lang", "rkt"]) == 2
    assert "--model is required" in capsys.readouterr().err
    assert not out.exists()


def test_missing_replay_source_of_one_language(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    assert translate(inputs, out, "--lang", "rkt,ml", "--replay-source",
                     inputs["replay"].replace("{lang}", "{lang}-missing")) == 2
    assert "rkt-missing.jsonl does not exist" in capsys.readouterr().err
    assert not out.exists()


def test_empty_shards_of_the_tests_dataset_are_skipped(tmp_path, capsys):
    """testgen writes a shard without kept rows as a parquet file without columns."""
    from multiplt.translation.source import load_rows

    folder = tmp_path / "testgen"
    (folder / "tests").mkdir(parents=True)
    pl.DataFrame().write_parquet(folder / "tests" / "0-of-2.parquet")
    out = tmp_path / "out"
    base = ["translate", "--tests", str(folder), "--out", str(out), "--lang", "rkt", "--backend", "replay",
            "--replay-source", str(tmp_path / "r.jsonl")]
    (tmp_path / "r.jsonl").write_text("")
    assert cli.main(base) == 2
    assert "has no rows" in capsys.readouterr().err
    pl.DataFrame(fx.ROWS).write_parquet(folder / "tests" / "1-of-2.parquet")
    rows, total, _, _ = load_rows(str(folder))
    assert total == len(fx.ROWS)
    assert [r["sha1"] for r in rows] == sorted(r["sha1"] for r in fx.ROWS)
    assert not out.exists()


def test_summary_before_any_collect_is_refused(inputs, tmp_path, capsys):
    """`--stage summary` on a folder where no shard of a language was collected: refused, naming
    the language and the stage to run, instead of an empty funnel.json and a card."""
    out = tmp_path / "out"
    assert translate(inputs, out, "--lang", "lua", "--stage", "summary") == 2
    err = capsys.readouterr().err
    assert "holds no collected shard of lua; run the collect stage first" in err and err.count("error:") == 1
    assert not out.exists()
    # as a translate output where lua's shard is collected and rkt's only sampled
    for code in ("lua", "rkt"):
        (out / "work" / code / "0-of-1").mkdir(parents=True)
        (out / "work" / code / "0-of-1" / "problems.jsonl").write_text("")
    (out / "funnel").mkdir()
    (out / "funnel" / "lua-0-of-1.json").write_text(
        '{"language": "lua", "split": "lua", "shard": "0-of-1", "counts": {"functions_in": 3}, "dropped": {}}')
    # a funnel without its shard's data file (written last) is a collect that did not finish
    assert translate(inputs, out, "--lang", "lua", "--stage", "summary") == 2
    assert "holds no collected shard of lua;" in capsys.readouterr().err
    (out / "data").mkdir()
    pl.DataFrame({"content": ["x"]}).write_parquet(out / "data" / "lua-00000-of-00001.parquet")
    assert translate(inputs, out, "--lang", "lua,racket", "--stage", "summary") == 2
    assert "holds no collected shard of rkt;" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["data", "funnel", "work"]
    assert translate(inputs, out, "--lang", "lua", "--stage", "summary") == 0
    assert (out / "funnel.json").exists() and (out / "README.md").exists()


def test_a_corpus_build_output_is_refused_naming_testgen(inputs, tmp_path, capsys):
    """A corpus build's output root (or its functions/) has functions but no tests: the error
    names the testgen run it needs, not one of the build's internal files."""
    from pathlib import Path

    planted = Path(__file__).resolve().parents[2] / "fixtures" / "corpus" / "planted"
    corpus = tmp_path / "corpus1"
    assert cli.main(["corpus", "build", "--source", str(planted), "--out", str(corpus), "--no-typecheck"]) == 0
    capsys.readouterr()
    out = tmp_path / "out"
    for given in (corpus, corpus / "functions"):
        assert cli.main(["translate", "--tests", str(given), "--out", str(out), "--lang", "rkt",
                         "--backend", "replay", "--replay-source", inputs["replay"]]) == 2
        err = capsys.readouterr().err
        assert (f"tests dataset {given} is a corpus build's output (functions without tests): run "
                f"`multiplt testgen --functions {corpus}` first and pass its output to --tests") in err
        assert err.count("error:") == 1 and "_work" not in err
    assert not out.exists()


def test_work_and_excluded_folders_of_a_tests_folder_are_not_read(tmp_path):
    from multiplt.translation.source import load_rows

    folder = tmp_path / "tests"
    for sub in ("a/_work/dedup/00000-of-00001", "excluded", "a/excluded"):
        (folder / sub).mkdir(parents=True)
        pl.DataFrame([{"reason": "dropped"}]).write_parquet(folder / sub / "rows.parquet")
    pl.DataFrame(fx.ROWS).write_parquet(folder / "part.parquet")
    rows, total, _, _ = load_rows(str(folder))
    assert total == len(fx.ROWS)


def test_a_null_in_a_tests_list_is_refused(inputs, tmp_path, capsys):
    """As testgen refuses it: a null is no test (in any row, whichever shard runs)."""
    bad = tmp_path / "bad.parquet"
    rows = [dict(r) for r in fx.ROWS]
    rows[1]["tests"] = [rows[1]["tests"][0], None]
    pl.DataFrame(rows).write_parquet(bad)
    out = tmp_path / "out"
    for shard in ("0/1", "0/4", "1/4", "2/4", "3/4"):
        assert cli.main(["translate", "--tests", str(bad), "--out", str(out), "--lang", "lua", "--backend",
                         "replay", "--replay-source", inputs["replay"], "--shard", shard]) == 2
        err = capsys.readouterr().err
        assert (f"tests dataset {bad} row 1: malformed record (tests holds a null; tests must be a "
                "list of strings)") in err and err.count("error:") == 1
    assert not out.exists()


def test_rows_repeating_a_sha1_are_dropped_as_duplicate_sha1(inputs, tmp_path):
    """The first row of a sha1 is translated; every later one is counted in the funnel
    (`functions_in`, dropped `duplicate_sha1`, as testgen counts them) and excluded with that
    reason, instead of being merged silently."""
    import json

    rows = [dict(r) for r in fx.ROWS] + [{**fx.ROWS[0], "id": 99}]
    tests = tmp_path / "dup"
    (tests / "tests").mkdir(parents=True)
    pl.DataFrame(rows).write_parquet(tests / "tests" / "part-0.parquet")
    out = tmp_path / "out"
    assert cli.main(["translate", "--tests", str(tests), "--out", str(out), "--lang", "lua", "--backend",
                     "replay", "--replay-source", inputs["replay"], "--n", "7", "--stage", "sample"]) == 0
    report = json.loads((out / "work" / "lua" / "0-of-1" / "problems.report.json").read_text())
    assert report["functions_in"] == 5 and report["prompts_built"] == 3
    assert report["dropped"] == {"duplicate_sha1": 1, "no test translates": 1}
    dup = [e for e in report["excluded"] if e["reason"].startswith("duplicate_sha1")]
    assert dup == [{"sha1": fx.ROWS[0]["sha1"], "id": 99, "entrypoint": "add_one", "stage": "build",
                    "reason": "duplicate_sha1: same sha1 as an earlier row"}]


def test_collect_before_sample_names_the_sample_stage_and_writes_nothing(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    assert translate(inputs, out, "--lang", "lua", "--stage", "collect") == 2
    err = capsys.readouterr().err
    assert (f"--stage collect: shard 0/1 of lua has not been sampled in {out}; run --stage sample first "
            "(same flags), then multiplt execute on its completions folder") in err
    assert err.count("error:") == 1 and not out.exists()
    # one language sampled, the other not: refused before the sampled one is collected
    assert translate(inputs, out, "--lang", "lua", "--stage", "sample") == 0
    before = sorted(str(p) for p in out.rglob("*"))
    assert translate(inputs, out, "--lang", "lua,r", "--stage", "collect") == 2
    assert "shard 0/1 of r has not been sampled" in capsys.readouterr().err
    assert sorted(str(p) for p in out.rglob("*")) == before
    # sampled, then a completions file lost: the sampling is named, not the execution
    import os

    from multiplt.generation import folder
    from multiplt.translation.pipeline import completions_uri

    completions = completions_uri(str(out), "lua", (0, 1))
    sha1 = sorted(r["sha1"] for r in fx.ROWS if r["entrypoint"] != "set_size")[0]
    os.remove(folder.problem_uri(completions, sha1))
    assert translate(inputs, out, "--lang", "lua", "--stage", "collect") == 2
    err = capsys.readouterr().err
    assert f"{sha1}: no completions file in {completions}; run the sampling first" in err


def test_a_language_given_by_name_is_its_code_everywhere():
    """`--lang racket,rkt,lua` printed its result under `racket` where funnel.json and the
    folders say `rkt` (and ran Racket twice)."""
    from multiplt.translation.config import TranslateConfig

    cfg = TranslateConfig(tests="t", out="o", langs=("racket", "rkt", "lua"), model="m")
    cfg.check()
    assert cfg.langs == ("rkt", "lua")


def test_a_testgen_run_with_a_shard_not_done_is_refused(inputs, tmp_path, capsys):
    """testgen writes tests/shard-K-of-N.parquet once shard K is done: with shard 1 of 2 killed
    before its file, translate refuses the output (as publish dataset refuses data/ with a shard
    missing) instead of translating half the tests; once the file is there it reads both."""
    from multiplt.translation.source import load_rows

    folder = tmp_path / "testgen"
    (folder / "tests").mkdir(parents=True)
    (folder / "work" / "shard-00001-of-00002").mkdir(parents=True)
    (folder / "work" / "shard-00001-of-00002" / "rows.jsonl").write_text("")  # killed after its rows
    half = len(fx.ROWS) // 2
    pl.DataFrame(fx.ROWS[:half]).write_parquet(folder / "tests" / "shard-00000-of-00002.parquet")
    out = tmp_path / "out"
    for given, where, shown, flag in (
            (folder, ": tests/", "tests/shard-00001-of-00002.parquet", f" --out {folder}"),
            (folder / "tests", "", "shard-00001-of-00002.parquet", f" --out {folder}")):
        assert cli.main(["translate", "--tests", str(given), "--out", str(out), "--lang", "rkt",
                         "--backend", "replay", "--replay-source", inputs["replay"]]) == 2
        err = capsys.readouterr().err
        assert (f"error: tests dataset {given}{where} holds 1 of the 2 shards of a testgen run (no "
                f"{shown}), which has not finished: run shard(s) 1/2 first (`multiplt testgen{flag} "
                f"--shard K/N` with the run's other flags)") in err and err.count("error:") == 1
    assert not out.exists()
    pl.DataFrame(fx.ROWS[half:]).write_parquet(folder / "tests" / "shard-00001-of-00002.parquet")
    assert load_rows(str(folder))[1] == len(fx.ROWS)


def test_a_replay_source_with_another_backend_is_refused(inputs, tmp_path, capsys):
    """As generate refuses it: the transformers and openai backends would ignore it silently."""
    out = tmp_path / "out"
    assert cli.main(["translate", "--tests", inputs["tests"], "--out", str(out), "--lang", "rkt",
                     "--model", "m", "--replay-source", inputs["tests"]]) == 2
    assert "--replay-source is for --backend replay only" in capsys.readouterr().err
    assert not out.exists()


def test_a_model_that_cannot_load_writes_nothing_and_another_limit_then_runs(inputs, tmp_path, capsys):
    """The model (and tokenizer) the sampling loads is checked before the shard's problems are
    built: problems.report.json records the input and --limit, so a run that wrote it and then
    failed on the model refused the corrected rerun with another --limit."""
    out, missing = tmp_path / "out", tmp_path / "nosuchdir"
    base = ["translate", "--tests", inputs["tests"], "--out", str(out), "--lang", "lua", "--n", "1",
            "--stage", "sample"]
    assert cli.main(base + ["--model", str(missing)]) == 2
    assert capsys.readouterr().err == f"multiplt translate: error: model {str(missing)!r} is not a model folder\n"
    assert not out.exists()
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")  # enough for the check, which loads no weights
    assert cli.main(base + ["--model", str(model), "--tokenizer", str(tmp_path / "notok")]) == 2
    assert f"tokenizer {str(tmp_path / 'notok')!r} is not a model folder" in capsys.readouterr().err
    assert not out.exists()
    assert cli.main(base + ["--limit", "2", "--backend", "replay", "--replay-source", inputs["replay"]]) == 0


def test_a_malformed_replay_source_writes_nothing(inputs, tmp_path, capsys):
    """A replay source the backend would refuse (a completion that is no string) is refused
    before the problems are built, as a missing one is."""
    import json

    bad = tmp_path / "bad-lua.jsonl"
    bad.write_text(json.dumps({"name": fx.ROWS[0]["sha1"], "completion": 5}) + "\n")
    out = tmp_path / "out"
    assert translate(inputs, out, "--lang", "lua", "--stage", "sample", "--replay-source",
                     str(tmp_path / "bad-{lang}.jsonl")) == 2
    err = capsys.readouterr().err
    assert f"replay source {bad} record 1: completions must be strings" in err and err.count("error:") == 1
    assert not out.exists()
    assert translate(inputs, out, "--lang", "lua", "--stage", "sample", "--limit", "1") == 0


def test_a_shard_without_rows_needs_no_model(inputs, tmp_path, capsys):
    """A shard of --tests that holds no row samples nothing, so its sample stage neither loads
    nor checks the model (an uncached Hub model offline, a model folder not there): it builds its
    empty problems, exit 0; a shard with rows is refused as before."""
    from multiplt.translation.source import load_rows

    n = len(fx.ROWS) + 1
    empty = next(k for k in range(n) if not load_rows(inputs["tests"], (k, n))[0])
    out, missing = tmp_path / "out", tmp_path / "nosuchdir"
    base = ["translate", "--tests", inputs["tests"], "--out", str(out), "--lang", "lua", "--n", "1",
            "--stage", "sample", "--model", str(missing)]
    assert cli.main(base + ["--shard", f"{empty}/{n}"]) == 0, capsys.readouterr().err
    assert (out / "work" / "lua" / f"{empty}-of-{n}" / "problems.report.json").exists()
    full = next(k for k in range(n) if load_rows(inputs["tests"], (k, n))[0])
    assert cli.main(base + ["--shard", f"{full}/{n}"]) == 2
    assert f"model {str(missing)!r} is not a model folder" in capsys.readouterr().err


def test_a_sampled_shard_needs_its_replay_source_only_for_samples_still_missing(inputs, tmp_path, capsys):
    """The replay source is checked (missing: "does not exist") before a shard is first built;
    a shard sampled already is left to the sampling, which reads the source only for samples
    still missing: the same sample stage again runs without it, a larger --n is refused naming it."""
    import shutil

    replay = tmp_path / "replay-{lang}.jsonl"
    shutil.copy(inputs["replay"].replace("{lang}", "lua"), tmp_path / "replay-lua.jsonl")
    out = tmp_path / "out"
    base = ["translate", "--tests", inputs["tests"], "--out", str(out), "--lang", "lua",
            "--backend", "replay", "--replay-source", str(replay), "--stage", "sample"]
    assert cli.main(base + ["--n", "1"]) == 0
    (tmp_path / "replay-lua.jsonl").unlink()
    assert cli.main(base + ["--n", "1"]) == 0, capsys.readouterr().err
    assert cli.main(base + ["--n", "2"]) == 2
    assert f"replay source {tmp_path / 'replay-lua.jsonl'} does not exist" in capsys.readouterr().err
