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
    rows, total, _ = load_rows(str(folder))
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
        '{"language": "lua", "shard": "0-of-1", "counts": {"functions_in": 3}, "dropped": {}}')
    assert translate(inputs, out, "--lang", "lua,racket", "--stage", "summary") == 2
    assert "holds no collected shard of rkt;" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["funnel", "work"]
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
    rows, total, _ = load_rows(str(folder))
    assert total == len(fx.ROWS)
