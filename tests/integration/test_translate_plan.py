"""The DAG's command lines work (issue 15, point 6): every (language, shard) entry of the
multiplt_translate plan run through the CLI as the stage tasks run them (sample, sandboxed
execute, collect, then summary) gives the fixture's exact rows; a shard in which no problem
could be built is nothing to do for its sandbox step."""

import sys
from pathlib import Path

import polars as pl
import pytest

from multiplt import cli, storage
from tests.fixtures import translate as fx

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
if str(REPO / "dags") not in sys.path:
    sys.path.insert(0, str(REPO / "dags"))

from multiplt_pipelines import translation as plans  # noqa: E402


def test_plan_commands_end_to_end(tmp_path):
    inputs = fx.write(tmp_path / "in")
    out = str(tmp_path / "translate")
    params = {**{k: v["default"] for k, v in plans.PARAMS.items()}, "languages": ["rkt"], "shards": 4,
              "n": fx.N, "timeout": fx.TIMEOUT, "backend": "replay", "replay_source": inputs["replay"],
              "tests": inputs["tests"], "out": out}
    entries = plans.translation_plan(params, "file:///unused")
    assert len(entries) == 4
    for stage in ("sample", "execute", "collect"):
        for entry in entries:
            assert cli.main(entry[stage]) == 0, (stage, entry["shard"])
    assert cli.main(plans.summary_command(params, "file:///unused")) == 0

    data = storage.join(out, "data")
    files = sorted(storage.basename(u) for u in storage.ls(data))
    assert files == [f"racket-0000{k}-of-00004.parquet" for k in range(4)]
    df = pl.concat([pl.read_parquet(storage.local_path(u)) for u in storage.ls(data)])
    assert {(r["entrypoint"], r["sample"]) for r in df.iter_rows(named=True)} == fx.kept("rkt")
    empty = [u for u in storage.ls(data) if pl.read_parquet(storage.local_path(u)).height == 0]
    assert empty, "the fixture leaves one shard without a buildable function"
    funnel = storage.read_json(storage.join(out, "funnel.json"))["rkt"]
    assert funnel["shards"] == [f"{k}-of-4" for k in range(4)]
    assert (funnel["functions_in"], funnel["prompts_built"], funnel["after_rouge_l"]) == (4, 3, 4)
