"""translate's funnel adds up: `dropped` counts every dropped function (the build's reasons) and
every dropped sample (failed tests with their status, TODO, exact and ROUGE-L duplicates), in a
shard's funnel, in funnel.json summed over shards, and in the card `publish dataset` writes from
it; a shard funnel written before `dropped` held the samples' reasons is mended by a rerun.
Replay backend, the sandbox and Lua (tests/fixtures/translate)."""

import collections
import json
import re
import shutil

import polars as pl
import pytest

from multiplt import cli, storage
from multiplt.translation import writer
from tests.fixtures import translate as fx
from tests.integration.test_translate import require_runtime, translate

pytestmark = pytest.mark.slow

#: lua over the fixture: set_size translates no test; 13 of 21 samples fail (one never ends),
#: one holds a TODO, two are exact and one a near duplicate of a kept sample
DROPPED = {"no test translates": 1, "failed: AssertionError (exit 1)": 12, "failed: Timeout (exit -1)": 1,
           "contains TODO": 1, "exact duplicate": 2, "near duplicate (ROUGE-L)": 1}


def _label(row: dict) -> str:
    """An excluded row's reason as the funnel counts it."""
    if row["stage"] == "build":
        return row["reason"].split(": ", 1)[0]
    return re.sub(r" \S+ > \S+$", "", row["reason"]) if row["stage"] == "dedup" else row["reason"]


def _check_adds_up(counts: dict, dropped: dict, excluded: pl.DataFrame) -> None:
    rows = list(excluded.iter_rows(named=True))
    assert dropped == dict(collections.Counter(_label(r) for r in rows))  # a reason per excluded row
    by_stage = collections.defaultdict(int)
    for row in rows:
        by_stage[row["stage"]] += 1
    assert counts["functions_in"] - counts["prompts_built"] == by_stage["build"]
    assert counts["translations_sampled"] - counts["passed"] == by_stage["validate"]
    assert counts["passed"] - counts["after_todo"] == by_stage["clean"]
    assert counts["after_todo"] - counts["after_rouge_l"] == by_stage["dedup"]
    assert (counts["functions_in"] + counts["translations_sampled"]
            == counts["prompts_built"] + counts["after_rouge_l"] + sum(dropped.values()))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return fx.write(tmp_path_factory.mktemp("translate-funnel-in"))


def test_the_funnel_counts_every_dropped_function_and_sample(inputs, tmp_path):
    require_runtime("lua")
    out = tmp_path / "tr"
    assert translate(inputs, out, "lua") == 0
    shard = json.loads((out / "funnel" / "lua-0-of-1.json").read_text())
    assert shard["dropped"] == DROPPED and list(shard["dropped"]) == list(DROPPED)  # build first
    excluded = pl.read_parquet(writer.excluded_uri(str(out), "lua", (0, 1)))
    _check_adds_up(shard["counts"], shard["dropped"], excluded)
    whole = json.loads((out / "funnel.json").read_text())["lua"]
    assert whole["dropped"] == DROPPED
    _check_adds_up(whole, whole["dropped"], excluded)

    # the card of `publish dataset` shows funnel.json, the dropped samples included
    dry = tmp_path / "dry"
    assert cli.main(["publish", "dataset", "--from", str(out), "--repo", "me/tr", "--dry-run", str(dry)]) == 0
    block = (dry / "README.md").read_text().split("`funnel.json`:\n\n```json\n", 1)[1].split("\n```", 1)[0]
    assert json.loads(block)["lua"]["dropped"] == DROPPED

    # two shards: each adds up, and so does their sum
    sharded = tmp_path / "sharded"
    for k in (0, 1):
        assert translate(inputs, sharded, "lua", "--shard", f"{k}/2") == 0
    for k in (0, 1):
        part = json.loads((sharded / "funnel" / f"lua-{k}-of-2.json").read_text())
        _check_adds_up(part["counts"], part["dropped"],
                       pl.read_parquet(writer.excluded_uri(str(sharded), "lua", (k, 2))))
    summed = json.loads((sharded / "funnel.json").read_text())["lua"]
    assert summed["dropped"] == DROPPED
    assert {k: v for k, v in summed.items() if k != "shards"} == {k: v for k, v in whole.items() if k != "shards"}


def test_a_rerun_mends_a_funnel_without_the_samples_reasons(inputs, tmp_path):
    """A shard collected before `dropped` held collect's reasons has only the build's: a rerun
    gives it (and funnel.json, and the card) the samples' reasons, as a fresh run writes them."""
    require_runtime("lua")
    fresh = tmp_path / "fresh"
    assert translate(inputs, fresh, "lua") == 0
    old = tmp_path / "old"
    shutil.copytree(fresh, old)
    uri = old / "funnel" / "lua-0-of-1.json"
    shard = json.loads(uri.read_text())
    storage.write_json(str(uri), {**shard, "dropped": {"no test translates": 1}}, indent=2)
    writer.write_summary(str(old))  # funnel.json and the card as the older version left them
    assert json.loads((old / "funnel.json").read_text())["lua"]["dropped"] == {"no test translates": 1}
    assert translate(inputs, old, "lua") == 0
    assert json.loads((old / "funnel" / "lua-0-of-1.json").read_text())["dropped"] == DROPPED
    for name in ("funnel/lua-0-of-1.json", "funnel.json", "README.md"):
        assert (old / name).read_text() == (fresh / name).read_text()
    before = {p: p.stat().st_mtime_ns for p in old.rglob("*") if p.is_file()}
    assert translate(inputs, old, "lua") == 0  # mended: the next rerun writes nothing
    assert {p: p.stat().st_mtime_ns for p in old.rglob("*") if p.is_file()} == before
