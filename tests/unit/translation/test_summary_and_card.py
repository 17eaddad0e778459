"""funnel.json and the card of a translate output cover a language only once every shard of it is
collected (`--stage summary` refuses a language with a shard missing, naming it; a collect
leaves the language out until then); a language that kept no row has no split in the card, so
the folder and its publish dry run still load with `datasets.load_dataset`. Shards are written
with the translate writer itself (no sandbox needed)."""

import json
import logging

import polars as pl
import pytest
import yaml

from multiplt import cli
from multiplt.languages import get
from multiplt.translation import writer
from tests.fixtures import translate as fx


@pytest.fixture
def inputs(tmp_path):
    return fx.write(tmp_path / "in")


def summary(inputs, out, langs="lua"):
    return cli.main(["translate", "--tests", inputs["tests"], "--out", str(out), "--lang", langs,
                     "--backend", "replay", "--replay-source", inputs["replay"], "--stage", "summary"])


def collected(out, code, shard, kept=1):
    """What the sample stage and a collect of one shard write (its problems, then its files)."""
    work = out / "work" / code / writer.shard_tag(shard)
    work.mkdir(parents=True, exist_ok=True)
    (work / "problems.jsonl").write_text("")
    rows = [{"content": f"-- {code} {shard} {i}\n", "sha1": f"{shard[0]}{i}", "id": str(i),
             "entrypoint": "f", "sample": 0, "pass_rate": 1.0, "model": "m", "revision": None}
            for i in range(kept)]
    counts = {"functions_in": 2, "prompts_built": 2, "translations_sampled": 2, "passed": kept,
              "after_todo": kept, "after_exact_dedup": kept, "after_rouge_l": kept}
    funnel = {"language": code, "split": get(code).split, "shard": writer.shard_tag(shard),
              "counts": counts, "dropped": {}}
    writer.write_shard(str(out), code, get(code).split, shard, rows, [], funnel,
                       {"n": 1, "rouge_threshold": 0.6})


def card_splits(folder) -> list[str]:
    meta = yaml.safe_load((folder / "README.md").read_text().split("---")[1])
    return [f["split"] for f in meta["configs"][0]["data_files"]]


def test_summary_refuses_a_language_with_a_shard_not_collected(inputs, tmp_path, capsys):
    out = tmp_path / "tr"
    collected(out, "lua", (0, 2))  # shard 1/2 never ran: the -of-2 says it is missing
    assert not (out / "funnel.json").exists() and not (out / "README.md").exists()
    before = sorted(str(p) for p in out.rglob("*"))
    assert summary(inputs, out) == 2
    err = capsys.readouterr().err
    assert (f"--stage summary: {out} lacks collected shards: lua 1-of-2 (of 2 shards); run the collect "
            "stage first") in err and err.count("error:") == 1
    assert sorted(str(p) for p in out.rglob("*")) == before  # nothing written
    (out / "work" / "lua" / "1-of-2").mkdir()  # sampled, not collected: still missing
    (out / "work" / "lua" / "1-of-2" / "problems.jsonl").write_text("")
    before = sorted(str(p) for p in out.rglob("*"))
    assert summary(inputs, out) == 2
    assert "lua 1-of-2 (of 2 shards)" in capsys.readouterr().err
    assert sorted(str(p) for p in out.rglob("*")) == before  # nothing written
    collected(out, "lua", (1, 2))
    assert summary(inputs, out) == 0
    funnel = json.loads((out / "funnel.json").read_text())
    assert funnel["lua"]["shards"] == ["0-of-2", "1-of-2"] and funnel["lua"]["after_rouge_l"] == 2
    assert card_splits(out) == ["lua"]


def test_a_collect_leaves_a_language_out_until_every_shard_is_collected(tmp_path, caplog):
    out = tmp_path / "tr"
    caplog.set_level(logging.INFO, logger="multiplt.translation")
    collected(out, "rkt", (0, 1))
    collected(out, "lua", (0, 2))
    assert "translate lua: funnel.json and the card (README.md) leave it out until every shard is " \
           "collected (not yet: 1-of-2)" in caplog.text
    assert list(json.loads((out / "funnel.json").read_text())) == ["rkt"]
    assert card_splits(out) == ["racket"]  # not half of lua
    collected(out, "lua", (1, 2))
    assert sorted(json.loads((out / "funnel.json").read_text())) == ["lua", "rkt"]
    assert card_splits(out) == ["lua", "racket"]


def test_a_funnel_without_its_data_file_is_not_a_collected_shard(tmp_path):
    out = tmp_path / "tr"
    collected(out, "lua", (0, 1))
    (out / "data" / "lua-00000-of-00001.parquet").unlink()  # a collect killed before its data file
    assert writer.shard_status(str(out))["lua"]["missing"] == ["0-of-1"]
    assert writer.merge(str(out)) == ({}, {"lua": ["0-of-1"]})


def _load(folder, cache):
    import datasets

    return datasets.load_dataset(str(folder), cache_dir=str(cache))


def test_a_language_that_kept_no_row_has_no_split_and_the_folder_loads(tmp_path, caplog, capsys):
    out = tmp_path / "tr"
    caplog.set_level(logging.INFO, logger="multiplt.translation")
    collected(out, "lua", (0, 1), kept=1)
    collected(out, "r", (0, 1), kept=0)
    assert "translate r: kept 0 rows over all its shards (funnel.json); the card (README.md) has no r " \
           "split" in caplog.text
    assert json.loads((out / "funnel.json").read_text())["r"]["after_rouge_l"] == 0
    assert (out / "data" / "r-00000-of-00001.parquet").exists()  # the shard's done marker, 0 rows
    assert card_splits(out) == ["lua"]
    assert "`r` kept no rows: no split" in (out / "README.md").read_text()
    loaded = _load(out, tmp_path / "cache")
    assert sorted(loaded) == ["lua"] and len(loaded["lua"]) == 1

    # what publish dataset --dry-run writes loads too; the empty split is not published
    dry = tmp_path / "dry"
    assert cli.main(["publish", "dataset", "--from", str(out), "--repo", "me/zero", "--dry-run", str(dry)]) == 0
    assert json.loads(capsys.readouterr().out)["splits"] == {"lua": 1, "r": 0}
    assert sorted(str(p.relative_to(dry)) for p in dry.rglob("*.parquet")) == ["data/lua-00000-of-00001.parquet"]
    assert card_splits(dry) == ["lua"]
    assert "`r` kept no rows: not published" in (dry / "README.md").read_text()
    loaded = _load(dry, tmp_path / "cache2")
    assert sorted(loaded) == ["lua"] and len(loaded["lua"]) == 1


def test_no_language_with_rows(tmp_path, capsys):
    out = tmp_path / "tr"
    collected(out, "r", (0, 1), kept=0)
    meta = yaml.safe_load((out / "README.md").read_text().split("---")[1])
    assert meta["configs"][0]["data_files"] == []  # no split that `datasets` would refuse
    dry = tmp_path / "dry"
    assert cli.main(["publish", "dataset", "--from", str(out), "--repo", "me/zero", "--dry-run", str(dry)]) == 2
    err = capsys.readouterr().err
    assert f"--from {out}: no split holds a row (r: 0 rows); nothing to publish" in err
    assert not dry.exists()


def test_publish_refuses_a_folder_with_shards_missing(tmp_path, capsys):
    out = tmp_path / "tr"
    (out / "data").mkdir(parents=True)
    pl.DataFrame({"content": ["x"]}).write_parquet(out / "data" / "lua-00000-of-00002.parquet")
    pl.DataFrame({"content": ["y"]}).write_parquet(out / "data" / "rkt-00000-of-00001.parquet")
    dry = tmp_path / "dry"
    assert cli.main(["publish", "dataset", "--from", str(out), "--repo", "me/half", "--dry-run", str(dry)]) == 2
    err = capsys.readouterr().err
    assert (f"--from {out}: data/ holds 1 of the 2 shards of lua (no data/lua-00001-of-00002.parquet); "
            "publish once every shard is written") in err and err.count("error:") == 1
    assert not dry.exists()
    pl.DataFrame({"content": ["z"]}).write_parquet(out / "data" / "lua-00001-of-00002.parquet")
    assert cli.main(["publish", "dataset", "--from", str(out), "--repo", "me/half", "--dry-run", str(dry)]) == 0


def test_summary_needs_only_the_output_and_the_languages(tmp_path, capsys):
    """`--stage summary` adds up the shards' funnels: it reads no tests and no model, so it asks
    for neither; every other stage still requires --tests, and --model but with replay."""
    out = tmp_path / "tr"
    collected(out, "lua", (0, 1))
    assert cli.main(["translate", "--out", str(out), "--lang", "lua", "--stage", "summary"]) == 0
    assert json.loads((out / "funnel.json").read_text())["lua"]["after_rouge_l"] == 1
    capsys.readouterr()
    for stage in ("all", "sample", "collect"):
        assert cli.main(["translate", "--out", str(out), "--lang", "lua", "--model", "m",
                         "--stage", stage]) == 2
        assert "--tests is required (except with --stage summary)" in capsys.readouterr().err
