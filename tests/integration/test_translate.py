"""`multiplt translate` end to end with the replay backend and the sandbox (issue 15, points 1-5, 8):
per installed language, right, wrong, non-terminating, near-duplicate, exact-duplicate and TODO
translations give exactly the kept rows, excluded reasons and funnel of the fixture; the stages
run separately give the same dataset; shards add up; a rerun does only what is missing."""

import os
import shutil

import polars as pl
import pytest

from multiplt import cli, languages, storage
from multiplt.execution import files
from multiplt.languages import get
from multiplt.translation import writer
from multiplt.translation.pipeline import completions_uri
from tests.fixtures import translate as fx

pytestmark = pytest.mark.slow
ENTRY = {row["sha1"]: row["entrypoint"] for row in fx.ROWS}
FUNNEL = {  # functions_in, prompts_built, sampled, passed, after TODO, after exact, after ROUGE-L
    "untyped": [4, 3, 21, 8, 7, 5, 4],
    "typed": [4, 2, 14, 7, 6, 4, 3],
}


def require_runtime(code):
    lang = get(code)
    missing = [b for b in lang.binaries if shutil.which(b) is None]
    if missing:
        reason = f"{lang.name} runtime not installed ({', '.join(missing)} not on PATH)"
        print(f"SKIP {code}: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return fx.write(tmp_path_factory.mktemp("translate-in"))


def translate(inputs, out, lang, *extra):
    return cli.main(["translate", "--tests", inputs["tests"], "--lang", lang, "--out", str(out),
                     "--backend", "replay", "--replay-source", inputs["replay"], "--n", str(fx.N),
                     "--timeout", str(fx.TIMEOUT), "--workers", "2", *extra])


def kept_pairs(out, code, shard="00000-of-00001"):
    df = pl.read_parquet(os.path.join(out, "data", f"{get(code).split}-{shard}.parquet"))
    return df, {(row["entrypoint"], row["sample"]) for row in df.iter_rows(named=True)}


@pytest.mark.parametrize("code", languages.targets())
def test_exact_kept_rows_per_language(inputs, tmp_path, code):
    require_runtime(code)
    out = tmp_path / "out"
    assert translate(inputs, out, code) == 0
    df, pairs = kept_pairs(out, code)
    assert pairs == fx.kept(code)
    assert df.columns == ["content", "sha1", "id", "entrypoint", "sample", "pass_rate", "model", "revision",
                          "translated_tests", "source_tests"]
    add_one = df.filter(pl.col("entrypoint") == "add_one")
    assert set(add_one["pass_rate"]) == {round(5 / 7, 4)}  # 0, 3, 4, 5, 6 pass
    assert set(df["model"]) == {"replay"}
    for text in df["content"]:
        assert "Canonical Python" not in text and "candidate" not in text and "TODO" not in text

    excluded = pl.read_parquet(writer.excluded_uri(str(out), get(code).split, (0, 1)))
    why = {(r["entrypoint"], r["sample"]): r["reason"] for r in excluded.iter_rows(named=True)}
    assert why[("add_one", 1)].startswith("failed: ")
    assert why[("add_one", 2)].startswith("failed: Timeout")
    assert why[("add_one", 3)].startswith("near duplicate (ROUGE-L)")
    assert why[("add_one", 4)] == "exact duplicate"
    assert why[("add_one", 6)] == "contains TODO"
    assert why[("count_vowels", 1)] == "exact duplicate"
    if code in fx.TYPED_ONLY:  # no content_with_types
        assert why[("shout", None)].startswith("no inferred types")
        assert why[("set_size", None)].startswith("no inferred types")
    else:
        assert why[("set_size", None)].startswith("no test translates")

    funnel = storage.read_json(str(out / "funnel.json"))[code]
    keys = ["functions_in", "prompts_built", "translations_sampled", "passed", "after_todo",
            "after_exact_dedup", "after_rouge_l"]
    assert [funnel[k] for k in keys] == FUNNEL["typed" if code in fx.TYPED_ONLY else "untyped"]
    assert funnel["shards"] == ["0-of-1"]
    # the shard's config keeps the generation's run record, not its list of every prompt's name
    run = storage.read_json(writer.config_uri(str(out), code, (0, 1)))["run"]
    assert run["model"] == "replay" and "problems" not in run


@pytest.fixture(scope="module")
def two_languages(inputs, tmp_path_factory):
    for code in ("rkt", "lua"):
        require_runtime(code)
    out = tmp_path_factory.mktemp("translate-out") / "ds"
    assert translate(inputs, out, "rkt,lua") == 0
    return out


def test_loads_with_datasets_and_the_card(two_languages):
    import datasets

    ds = datasets.load_dataset("parquet", data_dir=str(two_languages / "data"), split="train")
    assert len(ds) == 8 and "content" in ds.column_names
    by_split = datasets.load_dataset(str(two_languages))
    assert sorted(by_split) == ["lua", "racket"]
    assert len(by_split["racket"]) == 4 and len(by_split["lua"]) == 4
    assert all(t.startswith("#lang racket") for t in by_split["racket"]["content"])


def test_trains_with_multiplt_train_on_the_tiny_model(two_languages, tiny_model, tmp_path):
    import torch

    torch.set_num_threads(1)
    out = str(tmp_path / "train")
    rc = cli.main(["train", "--dataset", str(two_languages), "--base", tiny_model, "--lang", "rkt",
                   "--experiment", "multiplt", "--recipe", "starcoderbase-1b", "--out", out,
                   "--epochs", "1", "--seq-len", "16", "--batch-size", "2", "--micro-batch-size", "1",
                   "--warmup-steps", "1", "--eval-fraction", "0", "--log-every", "1"])
    assert rc == 0
    from multiplt.storage import manifest

    assert [r["tag"] for r in manifest.read(out)] == ["rkt-multiplt-epoch1"]


def _mtimes(out):
    return {p: os.stat(p).st_mtime_ns for p in (os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs)}


def test_rerun_writes_nothing_and_a_new_threshold_is_refused(inputs, two_languages, capsys):
    before = _mtimes(two_languages)
    assert translate(inputs, two_languages, "rkt,lua") == 0
    assert _mtimes(two_languages) == before
    assert translate(inputs, two_languages, "rkt", "--rouge-threshold", "0.9") == 2
    assert "was written with --rouge-threshold 0.6" in capsys.readouterr().err
    assert _mtimes(two_languages) == before


def test_another_threshold_is_refused_also_with_another_n(inputs, tmp_path, capsys):
    """A written shard was deduplicated with its config's --rouge-threshold: a rerun with
    another --n (which collects again) and another threshold is refused, before any sampling,
    instead of rewriting the shard with the new threshold."""
    require_runtime("lua")
    out = tmp_path / "out"
    assert translate(inputs, out, "lua", "--n", "1") == 0
    assert translate(inputs, out, "lua", "--n", "2") == 0
    config = writer.config_uri(str(out), "lua", (0, 1))
    capsys.readouterr()
    before = _mtimes(out)
    for n in ("1", "3"):  # fewer samples (collect again) or more (sample first)
        assert translate(inputs, out, "lua", "--n", n, "--rouge-threshold", "0.9") == 2
        err = capsys.readouterr().err
        assert "lua-00000-of-00001.parquet was written with --rouge-threshold 0.6; use another --out" in err
        assert _mtimes(out) == before, n
    assert storage.read_json(config)["rouge_threshold"] == 0.6


def test_a_run_killed_before_its_summary_gets_it_on_the_rerun(inputs, two_languages, tmp_path):
    """The data file marks a written shard; a run killed after it and before funnel.json and
    README.md (written last) gets them from the rerun, equal to an uninterrupted run's."""
    out = tmp_path / "killed"
    shutil.copytree(two_languages, out)
    for name in ("funnel.json", "README.md"):  # as left by a run killed before any summary
        (out / name).unlink()
    assert translate(inputs, out, "rkt,lua") == 0
    for name in ("funnel.json", "README.md"):
        assert (out / name).read_text() == (two_languages / name).read_text()
    # as left by a run killed after lua's data file, before its summary: rkt's summary only
    from multiplt.translation import writer

    shutil.move(out / "funnel" / "lua-0-of-1.json", tmp_path / "lua-funnel.json")
    writer.write_summary(str(out))
    assert "lua" not in (out / "funnel.json").read_text()
    shutil.move(tmp_path / "lua-funnel.json", out / "funnel" / "lua-0-of-1.json")
    assert translate(inputs, out, "rkt,lua") == 0
    for name in ("funnel.json", "README.md"):
        assert (out / name).read_text() == (two_languages / name).read_text()


def test_stages_separately_give_the_same_dataset(inputs, two_languages, tmp_path):
    out = tmp_path / "staged"
    assert translate(inputs, out, "rkt", "--stage", "sample") == 0
    assert not (out / "data").exists()
    folder = completions_uri(str(out), "rkt", (0, 1))
    assert len(files.completion_files(folder)) == 3
    assert translate(inputs, out, "rkt", "--stage", "collect") == 2  # not executed yet
    assert cli.main(["execute", "--in", folder, "--workers", "2", "--timeout", str(fx.TIMEOUT)]) == 0
    assert translate(inputs, out, "rkt", "--stage", "collect") == 0
    staged, _ = kept_pairs(out, "rkt")
    whole, _ = kept_pairs(two_languages, "rkt")
    assert staged.sort("sha1", "sample").equals(whole.sort("sha1", "sample"))


def test_shards_add_up(inputs, two_languages, tmp_path):
    out = tmp_path / "sharded"
    for k in (0, 1):
        assert translate(inputs, out, "rkt", "--shard", f"{k}/2") == 0
    parts = [kept_pairs(out, "rkt", f"0000{k}-of-00002")[0] for k in (0, 1)]
    assert all(len(p) for p in parts)
    whole, _ = kept_pairs(two_languages, "rkt")
    assert pl.concat(parts).sort("sha1", "sample").equals(whole.sort("sha1", "sample"))
    funnel = storage.read_json(str(out / "funnel.json"))["rkt"]
    assert funnel["shards"] == ["0-of-2", "1-of-2"]
    assert funnel["functions_in"] == 4 and funnel["after_rouge_l"] == 4
    assert writer.card(str(out)).count("split: racket") == 1
    # a shard of another layout into the same --out is refused before any work
    before = sorted(str(p) for p in out.rglob("*"))
    assert translate(inputs, out, "rkt", "--shard", "0/3") == 2
    assert sorted(str(p) for p in out.rglob("*")) == before
