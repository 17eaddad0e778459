"""`multiplt publish dataset`'s "How it was made" over a chain made by the real commands: a
corpus folder, `multiplt testgen` and `multiplt translate` (replay backend, Lua) with their
inputs given as relative or absolute paths; the card names all three stages and testgen's model,
and a rerun of either command with the other spelling of its input resumes."""

from __future__ import annotations

import json
import re

import polars as pl
import pytest
import yaml

from multiplt import cli, storage
from multiplt.hub.results import place_name
from tests.fixtures import chain as fx
from tests.integration.test_translate import require_runtime

pytestmark = pytest.mark.slow
TESTGEN_MODEL, TRANSLATE_MODEL = "tiny/test-writer", "tiny/translator"


def write_inputs(root) -> None:
    """corpus1/ (functions/ and its funnel, as `multiplt corpus build` lays them out) and the
    replay sources of both steps."""
    modules = {name: context for name, context, _ in fx.MODULES}
    rows = [{**r, "id": f"{r['entrypoint']}.py", "context": modules[r["entrypoint"]]}
            for r in fx.function_rows()]
    storage.write_parquet(f"{root}/corpus1/functions/part-00000.parquet", pl.DataFrame(rows))
    storage.write_json(f"{root}/corpus1/funnel.json", {"steps": [
        {"name": "extract", "in": 8, "out": 8},
        {"name": "too_short", "reason": "too_short", "in": 8, "out": fx.CORPUS_KEPT}]})
    storage.write_jsonl(f"{root}/replay/testgen.jsonl", fx.testgen_replay(rows))
    storage.write_jsonl(f"{root}/replay/lua.jsonl", fx.lua_replay(rows))


def run_testgen(functions, out) -> int:
    return cli.main(["testgen", "--functions", functions, "--out", out, "--backend", "replay",
                     "--replay-source", "replay/testgen.jsonl", "--model", TESTGEN_MODEL,
                     "--n", str(fx.N), "--workers", "2"])


def run_translate(tests, out) -> int:
    return cli.main(["translate", "--tests", tests, "--lang", "lua", "--out", out, "--backend",
                     "replay", "--replay-source", "replay/lua.jsonl", "--model", TRANSLATE_MODEL,
                     "--n", str(fx.N), "--workers", "2"])


def sections(card: str) -> dict[str, str]:
    """The card's "How it was made" sections by the folder each names."""
    made = card.split("## How it was made", 1)[1]
    parts = re.split(r"^### `([^`]+)`$", made, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


@pytest.mark.parametrize("spelling", ["relative", "absolute"])
def test_card_follows_translate_testgen_and_corpus(tmp_path, monkeypatch, capsys, spelling):
    require_runtime("lua")
    monkeypatch.chdir(tmp_path)
    write_inputs(tmp_path)
    place = (lambda name: name) if spelling == "relative" else (lambda name: str(tmp_path / name))
    assert run_testgen(place("corpus1"), place("tg2")) == 0
    assert run_translate(place("tg2"), place("tr2")) == 0
    # the configs name their inputs as absolute paths, whichever spelling was typed
    assert storage.read_json(storage.join("tg2", "work", "shard-all", "config.json"))["functions"] == str(tmp_path / "corpus1")
    assert storage.read_json("tr2/config/lua-0-of-1.json")["tests"] == str(tmp_path / "tg2")

    capsys.readouterr()
    assert cli.main(["publish", "dataset", "--from", place("tr2"), "--repo", "me/x",
                     "--dry-run", "dry1"]) == 0
    card = (tmp_path / "dry1" / "README.md").read_text()
    found = sections(card)
    # each folder by its public name (NAME~HASH of its real path), never by where it is kept
    assert list(found) == [place_name(str(tmp_path / name)) for name in ("tr2", "tg2", "corpus1")]
    assert str(tmp_path) not in card
    translated, tests, corpus = found.values()
    assert f"| lua | {TRANSLATE_MODEL} | replay | {fx.N} | 0.8 |" in translated
    assert f"| {TESTGEN_MODEL} | replay | {fx.N} | 0.2 | 0.95 | 400 | 0 |" in tests  # its sampling
    assert '"name": "low_coverage"' in tests  # testgen's funnel
    assert '"name": "too_short"' in corpus and "Models and sampling" not in corpus
    assert yaml.safe_load(card.split("---")[1])["dataset_info"]["splits"] == [
        {"name": "lua", "num_examples": len(fx.LUA_KEPT)}]

    # a rerun from the same folder resumes with either spelling of the same input
    for functions in ("corpus1", str(tmp_path / "corpus1")):
        capsys.readouterr()
        assert run_testgen(functions, place("tg2")) == 0
        assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["skipped"] is True
    for tests in ("tg2", str(tmp_path / "tg2"), f"file://{tmp_path}/tg2"):
        capsys.readouterr()
        assert run_translate(tests, place("tr2")) == 0
        counts = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["lua"]
        assert counts["after_rouge_l"] == len(fx.LUA_KEPT)
