"""Publishing again deletes only what a publication owns: a dataset's `data/` files and card that
its folder no longer has, the results table and card of `publish results`. A file someone else
put in the repo (notes, a file outside `data/`) stays. Against the test Hub."""

from __future__ import annotations

import json

import pytest

from multiplt import cli, storage

THEIRS = {"notes.txt": b"written by hand on the Hub\n", "other/x.parquet": b"not ours\n"}


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setenv("MULTIPLT_HUB_BACKOFF", "0.01")


def write_dataset(root, splits: dict[str, str]) -> str:
    """A translate-like output with one split per language, each a row saying its text."""
    import polars as pl

    for lang, text in splits.items():
        storage.write_parquet(f"{root}/data/{lang}-00000-of-00001.parquet",
                              pl.DataFrame({"content": [f"-- {text}\nlocal x = 1\n"]}))
        storage.write_json(f"{root}/config/{lang}-0-of-1.json",
                           {"language": lang, "model": "org/translator", "out": str(root)})
    storage.write_json(f"{root}/funnel.json", {lang: {"in": 2, "kept": 1} for lang in splits})
    return str(root)


def add_their_files(hub, rtype: str, repo_id: str) -> None:
    """A commit on main by someone else, adding THEIRS to what the repo holds."""
    repo = hub.repos[(rtype, repo_id)]
    head = repo.resolve("main")
    files = {**head.files, **{path: (data, False) for path, data in THEIRS.items()}}
    repo.branches["main"] = repo.commit(head.oid, files, "their files").oid


def publish(capsys, *argv) -> dict:
    capsys.readouterr()
    code = cli.main(["publish", *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_a_dataset_published_again_keeps_files_it_does_not_own(test_hub, tmp_path, capsys):
    folder = tmp_path / "tr"
    write_dataset(folder, {"lua": "v1", "r": "v1"})
    publish(capsys, "dataset", "--from", str(folder), "--repo", "ns/ds")
    add_their_files(test_hub, "dataset", "ns/ds")

    # the same folder, changed: one split rewritten, another gone
    storage.delete(f"{folder}/data/r-00000-of-00001.parquet")
    storage.delete(f"{folder}/config/r-0-of-1.json")
    write_dataset(folder, {"lua": "v2"})
    summary = publish(capsys, "dataset", "--from", str(folder), "--repo", "ns/ds")
    assert summary["deleted"] == 1  # the r split, which the dataset no longer has

    files = test_hub.repos[("dataset", "ns/ds")].resolve("main").files
    assert {path: files[path][0] for path in THEIRS} == THEIRS
    assert "data/r-00000-of-00001.parquet" not in files
    assert b"v2" in files["data/lua-00000-of-00001.parquet"][0]


def test_results_published_again_keep_files_they_do_not_own(test_hub, tmp_path, capsys):
    import polars as pl

    from multiplt.results.schema import polars_schema
    from tests.unit.hub.test_publish_results_rows import store_row

    bench = f"file://{tmp_path}/benchmarks/humaneval-lua.jsonl"
    store = str(tmp_path / "results.parquet")
    rows = [store_row("org/base", None, 0, 0.1, str(tmp_path / "evaluate"), bench)]
    storage.write_parquet(store, pl.DataFrame(rows, schema=polars_schema()))
    publish(capsys, "results", "--store", store, "--repo", "ns/board")
    add_their_files(test_hub, "dataset", "ns/board")

    rows.append(store_row("org/other", None, 0, 0.2, str(tmp_path / "evaluate"), bench))
    storage.write_parquet(store, pl.DataFrame(rows, schema=polars_schema()))
    publish(capsys, "results", "--store", store, "--repo", "ns/board")
    files = test_hub.repos[("dataset", "ns/board")].resolve("main").files
    assert {path: files[path][0] for path in THEIRS} == THEIRS
    assert b"org/other" in files["data/results-00000-of-00001.parquet"][0]
