"""The dataset card names no place of the deployment (multiplt/hub/cards.py `dataset_card`): its
source and every stage folder of "How it was made", a model given as a local folder and a
place in a funnel are shown as their public names NAME~HASH (results.place_name), as the model
and results cards name places. Published from a local folder whose input is on S3 (the test S3
server), whose own input is a local folder, to the test Hub."""

from __future__ import annotations

import re

import polars as pl
import pytest

from multiplt import cli, storage
from multiplt.hub.dataset import source_name
from multiplt.hub.results import place_name


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setenv("MULTIPLT_HUB_BACKOFF", "0.01")


def test_the_published_card_shows_no_local_path_or_storage_uri(test_hub, tmp_path, s3_bucket, capsys):
    root = str(tmp_path)
    tests, corpus, model = f"{s3_bucket}/runs/tg", f"{root}/corpus", f"{root}/models/writer"
    storage.write_json(f"{corpus}/funnel.json", {"steps": [{"name": "extract", "in": 3, "out": 2}],
                                                 "source": f"{root}/py-files"})
    storage.write_json(f"{tests}/funnel.json", {"steps": [{"name": "input", "in": 2, "out": 2}]})
    storage.write_json(storage.join(tests, "work", "shard-all", "config.json"), {
        "functions": corpus, "out": tests, "backend": "vllm", "model": model, "n": 5})
    storage.write_parquet(f"{root}/tr/data/lua-00000-of-00001.parquet", pl.DataFrame({"content": ["x = 1\n"]}))
    storage.write_json(f"{root}/tr/funnel.json", {"lua": {"in": 2, "kept": 1}})
    storage.write_json(f"{root}/tr/config/lua-0-of-1.json", {
        "tests": tests, "out": f"{root}/tr", "language": "lua", "model": "org/translator"})

    assert cli.main(["publish", "dataset", "--from", f"{root}/tr", "--repo", "ns/places"]) == 0
    card = test_hub.repos[("dataset", "ns/places")].resolve("main").files["README.md"][0].decode()
    for place in (root, s3_bucket, "s3://", "file://", "/models/", "/py-files"):
        assert place not in card
    assert not re.search(r"[\s`(\"']/[\w.-]", card)  # no absolute path at all
    headings = re.findall(r"^### `([^`]+)`$", card.split("## How it was made", 1)[1], flags=re.M)
    assert headings == [source_name(f"{root}/tr"), place_name(tests), place_name(corpus)]
    assert f"from `{source_name(f'{root}/tr')}`" in card  # the source it was published from
    assert f"| {place_name(model)} | vllm | 5 |" in card and "| lua | org/translator |" in card
    assert place_name(f"{root}/py-files") in card  # the corpus funnel's place, by its name
