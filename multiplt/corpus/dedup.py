"""The cross-shard dedup pass, one bucket of D at a time (its own mapped stage in the DAG).

Bucket b reads the signatures of every shard's kept rows and owns the exact keys and LSH band
keys that hash to b:
- exact: rows with the same exact key (normalized source); all but the smallest id are
  `duplicate` decisions;
- near: rows sharing an LSH band key are candidates; a candidate whose estimated Jaccard with
  the bucket's smallest id reaches the threshold becomes an edge (id, that id, similarity).
The merge applies the exact decisions, joins the edges into clusters and keeps the smallest id
of each cluster. Ids order rows, so the result does not depend on the shard or bucket count.
"""

from __future__ import annotations

import logging
import time

from multiplt import storage
from multiplt.corpus import parts
from multiplt.corpus.config import CorpusConfig
from multiplt.corpus.signatures import jaccard
from multiplt.errors import MultipltError
from multiplt.log import progress

LOG = logging.getLogger("multiplt.corpus")


def read_config(out: str) -> CorpusConfig:
    uri = storage.join(out, "_work", "config.json")
    if not storage.exists(uri):
        raise MultipltError(f"{out} holds no corpus shards: run `multiplt corpus build --shard K/N` first")
    return CorpusConfig.from_dict(storage.read_json(uri))


def all_shards(out: str) -> dict[int, str]:
    """{k: folder} of every shard of the build under `out`: all finished, and all having read
    one input (pin.check_shards); else one clear error."""
    from multiplt.corpus.pin import check_shards

    n, done = parts.completed(out, "shards")
    missing = sorted(set(range(n)) - set(done))
    if not n or missing:
        raise MultipltError(f"{out}: shards {missing or 'all'} of {n or '?'} are not finished yet")
    check_shards(out, done)
    return done


def _key_bucket(value: int | str, d: int) -> int:
    return (int(value[:15], 16) if isinstance(value, str) else value) % d


def run_bucket(out: str, b: int, d: int) -> dict:
    """Bucket b of d (skipped when already done); an `out` holding finished buckets of another
    count is refused before anything is written."""
    folder = parts.bucket_dir(out, b, d)
    if parts.done(folder) is not None:
        LOG.info("corpus dedup bucket %d/%d: already done, skipped", b, d)
        return storage.read_json(storage.join(folder, parts.MARKER))
    # the merge needs every bucket of one count: a bucket of another count would break the folder
    had, finished = parts.completed(out, "dedup")
    if had and had != d:
        raise MultipltError(f"{out} holds dedup buckets of a {had}-bucket run (finished: "
                            f"{', '.join(f'{k}/{had}' for k in sorted(finished))}), not of {d}: give "
                            f"--bucket B/{had}, or use a fresh --out for {d} buckets; nothing written")
    cfg = read_config(out)
    start = time.perf_counter()
    import polars as pl

    frames = [storage.read_parquet(storage.join(shard, "kept.parquet")).select(["id", *parts.SIGNATURES])
              for _, shard in sorted(all_shards(out).items())]
    table = pl.concat(frames)  # all_shards: at least one
    ids: list[str] = table["id"].to_list()
    exact: dict[str, list[int]] = {}
    bands: dict[int, list[int]] = {}
    rows = progress(table.select("exact_key", "bands").iter_rows(), total=table.height,
                    desc=f"dedup bucket {b}/{d}", unit="row")
    for index, (key, band_keys) in enumerate(rows):
        if _key_bucket(key, d) == b:
            exact.setdefault(key, []).append(index)
        for band_key in band_keys:
            if band_key % d == b:
                bands.setdefault(band_key, []).append(index)
    signatures = table["minhash"]
    cache: dict[int, list[int]] = {}

    def sig(index: int) -> list[int]:  # only candidates' signatures become Python lists
        if index not in cache:
            cache[index] = signatures[index].to_list()
        return cache[index]

    decisions = {"id": [], "reason": [], "other": [], "similarity": []}

    def decide(row: int, reason: str, other: int, similarity: float) -> None:
        decisions["id"].append(ids[row])
        decisions["reason"].append(reason)
        decisions["other"].append(ids[other])
        decisions["similarity"].append(similarity)

    for members in exact.values():
        if len(members) > 1:
            keep = min(members, key=ids.__getitem__)
            for m in members:
                if m != keep:
                    decide(m, "duplicate", keep, 1.0)
    seen_edges = set()
    for members in progress(bands.values(), total=len(bands), desc=f"dedup bucket {b}/{d} bands",
                            unit="band"):
        if len(members) > 1:
            hub = min(members, key=ids.__getitem__)
            for m in set(members) - {hub}:
                if (m, hub) in seen_edges:
                    continue
                seen_edges.add((m, hub))
                similarity = jaccard(sig(m), sig(hub))
                if similarity >= cfg.near_threshold:
                    decide(m, "near_duplicate", hub, round(similarity, 4))
    storage.write_parquet(storage.join(folder, "decisions.parquet"),
                          pl.DataFrame(decisions, schema={"id": pl.String, "reason": pl.String,
                                                          "other": pl.String, "similarity": pl.Float64}))
    info = {"rows": len(ids), "decisions": len(decisions["id"]),
            "seconds": round(time.perf_counter() - start, 3)}
    parts.finish(folder, info)
    LOG.info("corpus dedup bucket %d/%d: %d rows, %d decisions, %.1f s", b, d, len(ids),
             len(decisions["id"]), info["seconds"])
    return info
