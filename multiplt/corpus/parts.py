"""The files of a build under its --out URI and how rows become parquet.

    functions/part-KKKKK.parquet    kept rows (content, id, sha1, entrypoint, context, provenance)
    excluded/part-KKKKK.parquet     dropped rows, the same columns plus `reason` and `detail`
    funnel.json                     {"steps": [{"name", "in", "out", ...}], "files": ..., ...}
    corpus_config.json              the resolved config and the source revision
    _work/config.json               the config every shard, bucket and the merge agree on
    _work/input.json                the input every shard reads: source, revision, units (pin.py)
    _work/shards/KKKKK-of-NNNNN/    kept.parquet (with signatures), excluded.parquet,
                                    stats.json, _SUCCESS (the completion marker, written last)
    _work/dedup/BBBBB-of-DDDDD/     decisions.parquet, _SUCCESS
"""

from __future__ import annotations

import re

from multiplt import storage
from multiplt.errors import MultipltError

BASE = {"content": "str", "id": "str", "sha1": "str", "entrypoint": "str", "context": "str",
        "source": "str", "path": "str", "line": "int"}
SIGNATURES = ("exact_key", "minhash", "bands")
MARKER = "_SUCCESS"


def shard_dir(out: str, k: int, n: int) -> str:
    return storage.join(out, "_work", "shards", f"{k:05d}-of-{n:05d}")


def bucket_dir(out: str, b: int, d: int) -> str:
    return storage.join(out, "_work", "dedup", f"{b:05d}-of-{d:05d}")


def done(folder: str) -> dict | None:
    marker = storage.join(folder, MARKER)
    return storage.read_json(marker) if storage.exists(marker) else None


def finish(folder: str, info: dict) -> None:
    storage.write_json(storage.join(folder, MARKER), info)


def completed(out: str, kind: str) -> tuple[int, dict[int, str]]:
    """(N, {k: folder}) of the finished shards ("shards") or buckets ("dedup") of one run.
    Two listings whatever N (its folders, and every file below them for the markers): a
    request per folder would make each of N shards' start-ups cost N requests."""
    base = storage.join(out, "_work", kind)
    markers = {uri for uri in storage.ls(base, recursive=True) if uri.endswith("/" + MARKER)}
    found: dict[int, dict[int, str]] = {}
    if markers:
        for entry in storage.ls(base):
            match = re.search(r"(\d+)-of-(\d+)/$", entry)
            if match and storage.join(entry, MARKER) in markers:
                found.setdefault(int(match.group(2)), {})[int(match.group(1))] = entry.rstrip("/")
    if len(found) > 1:
        raise MultipltError(f"{out} holds {kind} of runs with different counts "
                            f"({', '.join(map(str, sorted(found)))}); use a fresh --out")
    if not found:
        return 0, {}
    (n, parts), = found.items()
    return n, parts


def frame(rows: list[dict], extra: dict[str, str] | None = None):
    """A polars DataFrame of rows (internal `_` keys dropped); fixed columns even when empty."""
    import polars as pl

    types = {"str": pl.String, "int": pl.Int64, "u32list": pl.List(pl.UInt32), "i64list": pl.List(pl.Int64)}
    schema = {**BASE, **(extra or {})}
    internal = set(SIGNATURES) - set(schema)  # signatures belong to kept rows only
    clean = [{k: v for k, v in row.items() if not k.startswith("_") and k not in internal}
             for row in rows]
    names = list(schema) + sorted({k for row in clean for k in row} - set(schema))
    columns = {name: [row.get(name) for row in clean] for name in names}
    return pl.DataFrame({name: pl.Series(name, values, dtype=types[schema[name]] if name in schema
                                         else pl.String) for name, values in columns.items()})


EXCLUDED = {"reason": "str", "detail": "str"}
KEPT = {"exact_key": "str", "minhash": "u32list", "bands": "i64list"}
