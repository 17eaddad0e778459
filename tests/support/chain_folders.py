"""Small hand-written stage folders in the layouts multiplt corpus, testgen and translate write
(for the dataset discovery and the Datasets page tests)."""

from __future__ import annotations

from multiplt import storage


def stored_rows(folder: str) -> int:
    """Rows of every parquet file under a storage folder."""
    return sum(storage.parquet_rows(u) for u in storage.ls(folder, recursive=True)
               if u.endswith(".parquet"))


def parquet(uri: str, rows: list[dict]) -> None:
    import polars as pl

    storage.write_parquet(uri, pl.DataFrame(rows) if rows else pl.DataFrame())


def write_chain(root: str) -> None:
    """A corpus, a testgen and a translate folder (two languages), as the stages lay them out."""
    corpus = f"{root}/corpus/stdlib"
    parquet(f"{corpus}/functions/part-00000.parquet", [{"id": "a", "content": "def f(): ..."}] * 3)
    parquet(f"{corpus}/excluded/part-00000.parquet",
            [{"id": "x", "reason": "no_return", "detail": None}] * 2
            + [{"id": "y", "reason": "duplicate", "detail": "of a"}])
    storage.write_json(f"{corpus}/funnel.json", {"steps": [
        {"name": "extract", "in": 6, "out": 6},
        {"name": "returns_value", "reason": "no_return", "in": 6, "out": 4},
        {"name": "exact_dedup", "reason": "duplicate", "in": 4, "out": 3}], "shards": 1})
    storage.write_json(f"{corpus}/corpus_config.json", {"source": "stdlib", "source_revision": "3.12"})

    tests = f"{root}/testgen"
    parquet(f"{tests}/tests/shard-00000-of-00002.parquet", [{"sha1": "1"}, {"sha1": "2"}])
    parquet(f"{tests}/tests/shard-00001-of-00002.parquet", [{"sha1": "3"}])
    parquet(f"{tests}/excluded/shard-00000-of-00002.parquet", [{"sha1": "4", "reason": "no_asserts"}])
    parquet(f"{tests}/excluded/shard-00001-of-00002.parquet", [])  # no drops: written column-less
    storage.write_json(f"{tests}/funnel.json", {"steps": [
        {"name": "input", "in": 4, "out": 4}, {"name": "no_asserts", "in": 4, "out": 3}]})
    for k in range(2):  # a shard's funnel in the work folder is not a dataset
        shard = storage.join(tests, "work", f"shard-0000{k}-of-00002")
        storage.write_json(f"{shard}/funnel.json", {"steps": []})
        storage.write_json(f"{shard}/config.json", {"model": "tiny/coder", "revision": "r1",
                                                    "backend": "transformers"})

    out = f"{root}/translate"
    parquet(f"{out}/data/racket-00000-of-00001.parquet",
             [{"content": "x", "model": "tiny/coder", "revision": None}] * 2)
    parquet(f"{out}/data/lua-00000-of-00001.parquet", [{"content": "y"}])
    parquet(f"{out}/excluded/excluded-racket-00000-of-00001.parquet", [
        {"stage": "validate", "reason": "failed: Exception (exit 1)"},
        {"stage": "validate", "reason": "failed: Exception (exit 2)"},
        {"stage": "dedup", "reason": "rouge_l 0.91 > 0.6"}, {"stage": "dedup", "reason": "exact"}])
    parquet(f"{out}/excluded/excluded-lua-00000-of-00001.parquet", [{"stage": "clean", "reason": "contains TODO"}])
    counts = {"functions_in": 3, "prompts_built": 3, "translations_sampled": 6, "passed": 4,
              "after_todo": 4, "after_exact_dedup": 3, "after_rouge_l": 2}
    storage.write_json(f"{out}/funnel.json", {
        "rkt": {"shards": ["0-of-1"], "dropped": {}, **counts},
        "lua": {"shards": ["0-of-1"], "dropped": {}, **counts, "passed": 2, "after_todo": 1,
                "after_exact_dedup": 1, "after_rouge_l": 1}})
    storage.write_json(f"{out}/config/rkt-0-of-1.json", {"model": "tiny/coder", "run": {"model": "tiny/coder",
                                                                                         "revision": "main"}})
    storage.write_json(f"{out}/config/lua-0-of-1.json", {"model": "other/coder", "run": {}})
    storage.write_json(f"{out}/published.json", {"repo": "me/multiplt-data", "url": "http://hub/datasets/me/multiplt-data"})
    # a folder with parquet but no funnel.json is not a stage output
    parquet(f"{root}/scratch/data/racket-0.parquet", [{"content": "z"}])
