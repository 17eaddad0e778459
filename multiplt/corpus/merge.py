"""The merge: dedup decisions applied to every shard's kept rows; `functions/` and `excluded/`
parts and `funnel.json` (over all shards) written, then the `_work/merged.json` marker: a
rerun with every output in place writes nothing, one with an output missing merges again."""

from __future__ import annotations

import logging
import time

from multiplt import storage
from multiplt.corpus import parts
from multiplt.corpus.dedup import all_shards, read_config
from multiplt.errors import MultipltError
from multiplt.log import drop_reasons, progress

LOG = logging.getLogger("multiplt.corpus")


class Clusters:
    """Union-find over ids; the representative of a cluster is its smallest id."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def dedup_drops(out: str) -> dict[str, tuple[str, str]]:
    """{id: (reason, detail)} of the rows the dedup pass drops."""
    import polars as pl

    d, buckets = parts.completed(out, "dedup")
    missing = sorted(set(range(d)) - set(buckets))
    if not d:
        raise MultipltError(f"{out}: no dedup has run yet; run `multiplt corpus dedup --out {out} "
                            "--bucket B/D` for every bucket B of D first")
    if missing:
        raise MultipltError(f"{out}: dedup buckets {missing} of {d} are not finished yet; run "
                            f"`multiplt corpus dedup --bucket B/{d}` for them first")
    frames = [storage.read_parquet(storage.join(f, "decisions.parquet")) for f in buckets.values()]
    decisions = pl.concat(frames) if frames else pl.DataFrame()
    drops: dict[str, tuple[str, str]] = {}
    edges = []
    for row_id, reason, other, similarity in decisions.iter_rows():
        if reason == "duplicate":
            drops[row_id] = ("duplicate", f"same normalized source as {other}")
        else:
            edges.append((row_id, other, similarity))
    clusters = Clusters()
    best: dict[str, tuple[str, float]] = {}
    for a, b, similarity in edges:
        if a in drops or b in drops:
            continue  # an exact duplicate's survivor carries the same edges
        clusters.union(a, b)
        best.setdefault(a, (b, similarity))
    for member in list(clusters.parent):
        rep = clusters.find(member)
        if rep != member:
            other, similarity = best.get(member, (rep, 0.0))
            via = f" (cluster of {rep})" if other != rep else ""
            drops[member] = ("near_duplicate", f"estimated Jaccard {similarity:.2f} with {other}{via}")
    return drops


def dropped_frame(drops: dict[str, tuple[str, str]]):
    """`drops` as one frame (id, reason, detail) sorted by id, for split_dropped."""
    import polars as pl

    frame = pl.DataFrame({"id": list(drops), "reason": [r for r, _ in drops.values()],
                          "detail": [x for _, x in drops.values()]},
                         schema={"id": pl.String, "reason": pl.String, "detail": pl.String})
    return frame.sort("id")


def split_dropped(kept, dropped):
    """(the rows of `kept` whose id is not in `dropped`, the others with `dropped`'s `reason`
    and `detail` columns after theirs), each in `kept`'s row order. `dropped`: dropped_frame's.
    A binary search of the sorted ids per row: a shard costs its own rows, whatever the number
    of dropped ids."""
    import polars as pl

    ids = kept["id"]
    if not dropped.height:
        return kept, kept.clear().with_columns(pl.lit(None, pl.String).alias(c) for c in ("reason", "detail"))
    at = dropped["id"].search_sorted(ids, side="left").clip(upper_bound=dropped.height - 1)
    hit = (dropped["id"].gather(at) == ids).fill_null(False)
    found = dropped.gather(at.filter(hit))
    return (kept.filter(~hit), kept.filter(hit).with_columns(found["reason"], found["detail"]))


def _merged_marker(out: str) -> str:
    return storage.join(out, "_work", "merged.json")


def merge(out: str) -> dict:
    """functions/, excluded/, corpus_config.json and funnel.json from the finished shards and
    dedup buckets; then `_work/merged.json`. A rerun over the same shards and buckets (same
    config) finds that marker and every output, and writes nothing; with an output missing it
    merges again."""
    import polars as pl

    start = time.perf_counter()
    cfg = read_config(out)
    shards = all_shards(out)
    identity = {"fingerprint": cfg.fingerprint(), "shards": len(shards),
                "dedup_buckets": parts.completed(out, "dedup")[0]}
    marker = _merged_marker(out)
    outputs = [storage.join(out, name) for name in ("funnel.json", "corpus_config.json")]
    outputs += [storage.join(out, folder, f"part-{k:05d}.parquet") for k in shards
                for folder in ("functions", "excluded")]
    if (storage.exists(marker) and storage.read_json(marker) == identity
            and all(storage.exists(uri) for uri in outputs)):
        funnel = storage.read_json(storage.join(out, "funnel.json"))
        LOG.info("corpus merge: already done for these %d shard(s), nothing written", len(shards))
        LOG.info("corpus funnel: %s", ", ".join(f"{s['name']} {s['in']}->{s['out']}" for s in funnel["steps"]))
        _warn_if_empty(funnel, out)
        return funnel
    drops = dedup_drops(out)
    dropped_ids = dropped_frame(drops)  # built once, searched per shard
    del drops
    totals: dict[str, dict] = {}
    files = {"read": 0, "syntax_error": 0}
    counts = {"in": 0, "duplicate": 0, "near_duplicate": 0}
    order: list[str] = []
    revisions = set()
    made_by: list[dict] = []  # the distinct provenance blocks of the shards (stats.json)
    for k, folder in progress(sorted(shards.items()), total=len(shards), desc="merge", unit="shard"):
        stats = storage.read_json(storage.join(folder, "stats.json"))
        if stats.get("source_revision"):
            revisions.add(stats["source_revision"])
        if stats.get("provenance") not in made_by:  # None: a shard finished before shards recorded it
            made_by.append(stats.get("provenance"))
        for key in files:
            files[key] += stats["files"][key]
        for step in stats["steps"]:
            if step["name"] not in totals:
                order.append(step["name"])
                totals[step["name"]] = {"name": step["name"], **({"reason": step["reason"]} if "reason" in step else {}),
                                        "in": 0, "out": 0, "seconds": 0.0}
            for key in ("in", "out", "seconds"):
                totals[step["name"]][key] += step[key]
        kept = storage.read_parquet(storage.join(folder, "kept.parquet")).drop(list(parts.SIGNATURES))
        excluded = storage.read_parquet(storage.join(folder, "excluded.parquet"))
        kept, dropped = split_dropped(kept, dropped_ids)
        counts["in"] += kept.height + dropped.height
        if dropped.height:
            for reason, n in dropped["reason"].value_counts().iter_rows():
                counts[reason] += n
            excluded = pl.concat([excluded, dropped], how="diagonal_relaxed")
        storage.write_parquet(storage.join(out, "functions", f"part-{k:05d}.parquet"), kept)
        storage.write_parquet(storage.join(out, "excluded", f"part-{k:05d}.parquet"), excluded)
    steps = [totals[name] for name in order]
    after_exact = counts["in"] - counts["duplicate"]
    steps.append({"name": "exact_dedup", "reason": "duplicate", "in": counts["in"], "out": after_exact})
    steps.append({"name": "near_dedup", "reason": "near_duplicate", "in": after_exact,
                  "out": after_exact - counts["near_duplicate"]})
    for step in steps:
        if "seconds" in step:
            step["seconds"] = round(step["seconds"], 3)
    funnel = {"steps": steps, "files": files, "shards": len(shards),
              "dedup_buckets": parts.completed(out, "dedup")[0],
              "merge_seconds": round(time.perf_counter() - start, 3)}
    # all_shards: every shard read one input, so one revision (or none); the provenance is the
    # merge's (the code and libraries this process runs), shard_provenance the shards' own
    merged_by = cfg.provenance()
    config = {**cfg.as_dict(), "source_revision": next(iter(revisions), None),
              "provenance": merged_by, "shard_provenance": made_by}
    versions = sorted({(p or {}).get("code_version") or "not recorded" for p in made_by})
    if len(made_by) > 1 or made_by != [merged_by]:
        LOG.warning("corpus merge: the shards of %s were made by %s code version(s) (%s) and merged "
                    "by %s: corpus_config.json's shard_provenance lists them", out, len(versions),
                    ", ".join(versions), merged_by.get("code_version"))
    storage.write_json(storage.join(out, "corpus_config.json"), config, indent=2)
    storage.write_json(storage.join(out, "funnel.json"), funnel, indent=2)
    storage.write_json(marker, identity)
    LOG.info("corpus funnel: %s", ", ".join(f"{s['name']} {s['in']}->{s['out']}" for s in steps))
    _warn_if_empty(funnel, out)
    return funnel


def summary(funnel: dict) -> str:
    """`7 of 8 functions kept, from 11 documents read (2 do not parse)`: the functions kept of
    those found (the first step's `in`) and the documents (files or table rows) they came from."""
    files = funnel.get("files") or {}
    unparsed = files.get("syntax_error", 0)
    return (f"{funnel['steps'][-1]['out']} of {funnel['steps'][0]['in']} functions kept, from "
            f"{_documents(files.get('read', 0))} read{f' ({unparsed} do not parse)' if unparsed else ''}")


def _documents(n: int) -> str:
    from multiplt.corpus.shard import documents  # the shard log's noun, for any kind of source

    return documents(n, None)


def _warn_if_empty(funnel: dict, out: str) -> None:
    """One WARNING line when the build kept no function (exit 0 all the same: an empty result
    is a result), naming the documents that do not parse and the reasons functions were
    dropped for, with counts (most first)."""
    steps = funnel["steps"]
    if steps[-1]["out"]:
        return
    files = funnel.get("files") or {}
    unparsed = files.get("syntax_error", 0)
    why = ([f"syntax_error {unparsed} (documents that do not parse)"] if unparsed else []) + drop_reasons(steps)
    LOG.warning("corpus kept 0 of %d functions, from %s read%s: %s holds no row; %s gives each "
                "dropped row's reason", steps[0]["in"], _documents(files.get("read", 0)),
                f" ({', '.join(why)})" if why else "", storage.join(out, "functions"),
                storage.join(out, "excluded"))
