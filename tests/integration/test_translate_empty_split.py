"""`multiplt translate` end to end (replay backend, the sandbox) into one --out for a language
that keeps rows (Lua) and one that keeps none (R, every translation wrong): the folder and what
`publish dataset --dry-run` writes both load with `datasets.load_dataset` (the empty split is
left out of the card, and not published); a tests dataset with two rows of one sha1 has the
second counted in the funnel as `duplicate_sha1` and listed in excluded/."""

import json

import polars as pl
import pytest
import yaml

from multiplt import cli
from multiplt.translation import writer
from tests.fixtures import translate as fx
from tests.integration.test_translate import require_runtime

pytestmark = pytest.mark.slow


def test_a_language_with_no_row_leaves_the_dataset_loadable(tmp_path, capsys):
    import datasets

    for code in ("lua", "r"):
        require_runtime(code)
    inputs = fx.write(tmp_path / "in")
    rows = [dict(r) for r in fx.ROWS] + [{**fx.ROWS[1], "id": 99}]  # count_vowels twice
    pl.DataFrame(rows).write_parquet(tmp_path / "in" / "tests" / "part-0.parquet")
    wrong = tmp_path / "r-wrong.jsonl"
    wrong.write_text("".join(json.dumps({"name": r["sha1"], "completion": "\n  stop('no')\n}\n"}) + "\n"
                             for r in fx.ROWS))
    out = tmp_path / "tr"
    common = ["translate", "--tests", inputs["tests"], "--out", str(out), "--backend", "replay", "--n", "1",
              "--timeout", str(fx.TIMEOUT), "--workers", "2"]
    assert cli.main(common + ["--lang", "lua", "--replay-source", inputs["replay"]]) == 0
    assert cli.main(common + ["--lang", "r", "--replay-source", str(wrong)]) == 0
    capsys.readouterr()

    funnel = json.loads((out / "funnel.json").read_text())
    assert funnel["r"]["after_rouge_l"] == 0 and funnel["lua"]["after_rouge_l"] == 3
    for code in ("lua", "r"):
        assert funnel[code]["functions_in"] == 5 and funnel[code]["dropped"]["duplicate_sha1"] == 1
    excluded = pl.read_parquet(writer.excluded_uri(str(out), "lua", (0, 1)))
    dup = excluded.filter(pl.col("reason").str.starts_with("duplicate_sha1"))
    assert dup.select("id", "entrypoint", "stage").rows() == [("99", "count_vowels", "build")]

    meta = yaml.safe_load((out / "README.md").read_text().split("---")[1])
    assert meta["configs"][0]["data_files"] == [{"split": "lua", "path": "data/lua-*.parquet"}]
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    assert sorted(loaded) == ["lua"] and len(loaded["lua"]) == 3

    dry = tmp_path / "dry"
    assert cli.main(["publish", "dataset", "--from", str(out), "--repo", "me/zero", "--dry-run", str(dry)]) == 0
    assert not list(dry.glob("data/r-*"))
    loaded = datasets.load_dataset(str(dry), cache_dir=str(tmp_path / "cache2"))
    assert sorted(loaded) == ["lua"] and len(loaded["lua"]) == 3
