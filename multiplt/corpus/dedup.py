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


PAIRS_PER_CHUNK = 1 << 16  # candidate pairs compared at once: a chunk's signatures are ~64 MB


def _read_signatures(uri: str):
    """The id and signature columns of one shard's kept.parquet (the other columns, the source
    text among them, are never decoded)."""
    import io

    import polars as pl

    data = storage.read_bytes(uri)
    try:
        return pl.read_parquet(io.BytesIO(data), columns=["id", *parts.SIGNATURES])
    except Exception as exc:  # polars raises several types for a bad file
        raise MultipltError(f"{uri} is not a readable parquet file: {exc}") from None


def _against_hub(members, group: str, first, rank):
    """The rows (row, hub, first) of `members` (row, `group`, ...) whose group holds another
    row: `hub` the group's smallest rank (rank: a row's place in (id, row) order), `first` the
    group's `first` (its order of appearance); the hub itself is left out."""
    import polars as pl

    members = members.filter(pl.col(group).is_duplicated())
    members = members.with_columns(rank.gather(members["row"]))
    groups = members.group_by(group).agg(first.alias("first"), pl.col("rank").min().alias("hub"))
    return (members.join(groups, on=group).filter(pl.col("rank") != pl.col("hub"))
            .select("row", "hub", "first"))


def decide(table, b: int, d: int, threshold: float, desc: str = "dedup"):
    """Bucket b of d's decisions over `table` (columns id, exact_key, minhash, bands; a row's
    index is its position), as a DataFrame (id, reason, other, similarity), in this order:
    - `duplicate`: per exact key of the bucket (in order of first appearance) with more than
      one row, every row but the smallest id (ties: the first row), against that id;
    - `near_duplicate`: per band key of the bucket (in order of first appearance: row, then
      band), every other row of the band against the band's smallest id (its hub), in row
      order, each (row, hub) pair compared once (at its first band), kept when the estimated
      Jaccard similarity reaches `threshold` (rounded to 4 places).
    Columnar throughout: signatures stay one UInt32 block, band keys are grouped by polars."""
    import polars as pl

    n = table.height
    if not n:
        return _decisions(pl.Series([], dtype=pl.String), "", pl.Series([], dtype=pl.String), 0.0)
    ids = table["id"]
    rows = pl.int_range(0, n, dtype=pl.UInt32, eager=True).alias("row")
    rank = ids.rank("ordinal").cast(pl.UInt32).alias("rank")  # (id, row) order, 1-based
    row_of_rank = rank.arg_sort().cast(pl.UInt32)  # rank r is row row_of_rank[r - 1]
    key = table["exact_key"]
    routed = (pl.col("key").str.slice(0, 15).str.to_integer(base=16) if key.dtype == pl.String
              else pl.col("key")) % d == b
    exact = pl.DataFrame([rows, key.alias("key")]).filter(routed)
    exact = _against_hub(exact, "key", pl.col("row").min(), rank).sort("first", "row")
    duplicates = _decisions(ids.gather(exact["row"]), "duplicate", ids.gather(row_of_rank.gather(exact["hub"] - 1)), 1.0)
    del exact
    mine = table["bands"] if d == 1 else table["bands"].list.eval(pl.element().filter(pl.element() % d == b))
    bands = (pl.DataFrame([rows, mine.alias("band")]).explode("band")  # in order: row, then band
             .with_row_index("seq").filter(pl.col("band").is_not_null()))
    del mine
    bands = (_against_hub(bands, "band", pl.col("seq").min(), rank)
             .group_by("row", "hub").agg(pl.col("first").min()).sort("first", "row"))
    m, hubs = bands["row"], row_of_rank.gather(bands["hub"] - 1)
    del bands
    lengths = table["minhash"].list.len()
    width = lengths.max()
    if m.len() and (not width or lengths.min() != width):
        raise MultipltError(f"{desc}: MinHash signatures of different lengths ({lengths.min()} to "
                            f"{width} values); the shards of one build share --num-perm")
    near = {"id": [], "other": [], "similarity": []}
    if m.len():
        signatures = table["minhash"].cast(pl.Array(pl.UInt32, width))
        # the similarity of `equal` equal values, as jaccard() gives it, and its verdict
        estimate = [equal / width for equal in range(width + 1)]
        rounded = pl.Series([round(x, 4) for x in estimate], dtype=pl.Float64)
        passes = pl.Series([x >= threshold for x in estimate], dtype=pl.Boolean)
        bar = progress(total=m.len(), desc=f"{desc} pairs", unit="pair")
        for start in range(0, m.len(), PAIRS_PER_CHUNK):
            a, h = m.slice(start, PAIRS_PER_CHUNK), hubs.slice(start, PAIRS_PER_CHUNK)
            same = signatures.gather(a).explode() == signatures.gather(h).explode()
            equal = same.reshape((a.len(), width)).arr.sum()  # equal values per pair
            hit = passes.gather(equal)
            near["id"].append(ids.gather(a.filter(hit)))
            near["other"].append(ids.gather(h.filter(hit)))
            near["similarity"].append(rounded.gather(equal.filter(hit)))
            bar.update(a.len())
        bar.close()
    if not near["id"]:
        return duplicates
    found = _decisions(pl.concat(near["id"]), "near_duplicate", pl.concat(near["other"]),
                       pl.concat(near["similarity"]))
    return pl.concat([duplicates, found])


def _decisions(ids, reason: str, others, similarity):
    """Decisions (id, reason, other, similarity) of one reason, as decisions.parquet holds them;
    `similarity` one per row, or one for all."""
    import polars as pl

    return pl.DataFrame({"id": ids, "other": others}).select(
        pl.col("id").cast(pl.String), pl.lit(reason, dtype=pl.String).alias("reason"),
        pl.col("other").cast(pl.String), pl.lit(similarity).cast(pl.Float64).alias("similarity"))


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

    shards = sorted(all_shards(out).items())
    frames = [_read_signatures(storage.join(shard, "kept.parquet"))
              for _, shard in progress(shards, total=len(shards), desc=f"dedup bucket {b}/{d} read", unit="shard")]
    table = pl.concat(frames)  # all_shards: at least one
    del frames
    decisions = decide(table, b, d, cfg.near_threshold, desc=f"dedup bucket {b}/{d}")
    storage.write_parquet(storage.join(folder, "decisions.parquet"), decisions)
    info = {"rows": table.height, "decisions": decisions.height,
            "seconds": round(time.perf_counter() - start, 3)}
    parts.finish(folder, info)
    LOG.info("corpus dedup bucket %d/%d: %d rows, %d decisions, %.1f s", b, d, table.height,
             decisions.height, info["seconds"])
    return info
