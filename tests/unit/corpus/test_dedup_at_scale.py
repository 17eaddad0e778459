"""The dedup bucket, the merge and the shard listing stay linear at scale: a bucket's decisions
are the row-by-row algorithm's (checked against it) without turning rows into Python objects,
the merge searches the dropped ids once per build rather than once per shard, and finding the
finished shards costs a fixed number of listings whatever their count."""

from __future__ import annotations

import hashlib
import random

import polars as pl
import pytest

from multiplt import cli, storage
from multiplt.corpus import dedup, merge, parts
from multiplt.corpus.signatures import jaccard
from tests.unit.corpus.test_dedup import LONG as HIST

MEAN = '''def mean_of(xs):
    """The mean of xs."""
    total = 0
    for x in xs:
        total += x
    if not xs:
        return 0.0
    return total / len(xs)
'''
FILES = {  # sorted and dealt round-robin over the shards: a.py to shard 0, b.py to 1, ...
    "a.py": HIST,
    "b.py": "# the same, laid out otherwise\n" + MEAN.replace("total = 0\n", "total = 0  # running\n\n"),
    "c.py": HIST.replace(".lower()", ".casefold()"),
    "d.py": MEAN,
    "e.py": HIST.replace(".lower()", ".casefold()").replace("(-kv[1], kv[0])", "(kv[0], -kv[1])"),
    "f.py": HIST.replace("+ 1", "+ 2"),
    "g.py": MEAN,
}


def build(tmp_path, shards: int, buckets: int) -> str:
    src = tmp_path / "src"
    src.mkdir()
    for name, text in FILES.items():
        (src / name).write_text(text)
    out = str(tmp_path / "out")
    for k in range(shards):
        assert cli.main(["corpus", "build", "--source", str(src), "--out", out, "--shard", f"{k}/{shards}",
                         "--no-typecheck"]) == 0
    for b in range(buckets):
        assert cli.main(["corpus", "dedup", "--out", out, "--bucket", f"{b}/{buckets}"]) == 0
    return out


def parts_of(out: str, kind: str) -> list[list[tuple]]:
    folder = storage.join(out, kind)
    return [pl.read_parquet(uri).select(["id", *(["reason", "detail"] if kind == "excluded" else [])]).rows()
            for uri in storage.ls(folder)]


# ---- the merge -----------------------------------------------------------------------------------
def test_the_merge_result_is_pinned(tmp_path):
    """Rows, their order per part and every reason and detail, as the merge gave them before it
    searched the dropped ids once per build (exact and near duplicates across shards, 2 buckets)."""
    out = build(tmp_path, 3, 2)
    assert cli.main(["corpus", "merge", "--out", out]) == 0
    assert parts_of(out, "functions") == [[("a.py:1:hist",)], [("b.py:2:mean_of",)], []]
    assert parts_of(out, "excluded") == [
        [("d.py:1:mean_of", "duplicate", "same normalized source as b.py:2:mean_of"),
         ("g.py:1:mean_of", "duplicate", "same normalized source as b.py:2:mean_of")],
        [("e.py:1:hist", "near_duplicate", "estimated Jaccard 0.77 with c.py:1:hist (cluster of a.py:1:hist)")],
        [("c.py:1:hist", "near_duplicate", "estimated Jaccard 0.91 with a.py:1:hist"),
         ("f.py:1:hist", "near_duplicate", "estimated Jaccard 0.92 with a.py:1:hist")]]
    funnel = storage.read_json(storage.join(out, "funnel.json"))
    assert [(s["name"], s["in"], s["out"]) for s in funnel["steps"][-2:]] == [
        ("exact_dedup", 7, 5), ("near_dedup", 5, 2)]


class CountingDict(dict):
    """A dict that counts the passes over all its entries."""

    passes = 0

    def __iter__(self):
        CountingDict.passes += 1
        return super().__iter__()

    def keys(self):
        CountingDict.passes += 1
        return super().keys()

    def values(self):
        CountingDict.passes += 1
        return super().values()

    def items(self):
        CountingDict.passes += 1
        return super().items()


@pytest.mark.parametrize("shards", [1, 3])
def test_the_merge_goes_over_the_dropped_ids_a_fixed_number_of_times(tmp_path, monkeypatch, shards):
    """A pass over every dropped id per shard made a 100-shard merge of 600k rows take 89 s
    (shards x drops): the passes must not grow with the shards."""
    out = build(tmp_path, shards, 1)
    real = merge.dedup_drops
    monkeypatch.setattr(merge, "dedup_drops", lambda o: CountingDict(real(o)))
    CountingDict.passes = 0
    assert cli.main(["corpus", "merge", "--out", out]) == 0
    assert 0 < CountingDict.passes <= 3
    assert sum(len(p) for p in parts_of(out, "functions")) == 2


def test_split_dropped_keeps_row_order_and_matches_every_copy_of_an_id():
    kept = pl.DataFrame({"content": ["1", "2", "3", "4", "5"], "id": ["b", "x", "a", "b", "zz"]})
    dropped = merge.dropped_frame({"zz": ("near_duplicate", "z"), "b": ("duplicate", "d"), "q": ("duplicate", "q")})
    rest, gone = merge.split_dropped(kept, dropped)
    assert rest.rows() == [("2", "x"), ("3", "a")]
    assert gone.columns == ["content", "id", "reason", "detail"]
    assert gone.rows() == [("1", "b", "duplicate", "d"), ("4", "b", "duplicate", "d"), ("5", "zz", "near_duplicate", "z")]
    rest, gone = merge.split_dropped(kept, merge.dropped_frame({}))
    assert rest.equals(kept) and gone.height == 0


# ---- a dedup bucket --------------------------------------------------------------------------------
def reference(table: pl.DataFrame, b: int, d: int, threshold: float) -> list[tuple]:
    """The row-by-row algorithm the bucket ran before it became columnar (Python dicts of
    row lists, a Python Jaccard per candidate pair): the decisions to match."""
    ids = table["id"].to_list()
    exact: dict[str, list[int]] = {}
    bands: dict[int, list[int]] = {}
    for index, (key, band_keys) in enumerate(table.select("exact_key", "bands").iter_rows()):
        if int(key[:15], 16) % d == b:
            exact.setdefault(key, []).append(index)
        for band_key in band_keys:
            if band_key % d == b:
                bands.setdefault(band_key, []).append(index)
    signatures = table["minhash"].to_list()
    decisions = []
    for members in exact.values():
        if len(members) > 1:
            keep = min(members, key=ids.__getitem__)
            decisions += [(ids[m], "duplicate", ids[keep], 1.0) for m in members if m != keep]
    seen = set()
    for members in bands.values():
        if len(members) > 1:
            hub = min(members, key=ids.__getitem__)
            for m in set(members) - {hub}:
                if (m, hub) in seen:
                    continue
                seen.add((m, hub))
                similarity = jaccard(signatures[m], signatures[hub])
                if similarity >= threshold:
                    decisions.append((ids[m], "near_duplicate", ids[hub], round(similarity, 4)))
    return decisions


def random_table(seed: int, n: int = 400, width: int = 128) -> pl.DataFrame:
    """Rows with colliding exact keys, band keys (negative ones too) shared across rows, a few
    rows with no band key or a repeated id, and signatures whose similarity spreads around the
    threshold (92 or 100 equal values of 128 round half to even: 0.7188, 0.7812)."""
    rng = random.Random(seed)
    families = [[rng.randrange(2**32) for _ in range(width)] for _ in range(12)]
    rows = {"id": [], "exact_key": [], "minhash": [], "bands": []}
    for i in range(n):
        rows["id"].append(rows["id"][rng.randrange(i)] if i and rng.random() < 0.03 else f"r{rng.randrange(10**6):06d}")
        rows["exact_key"].append(hashlib.sha1(str(rng.randrange(n // 2)).encode()).hexdigest())
        family = rng.randrange(len(families))
        signature = list(families[family])
        for position in rng.sample(range(width), rng.choice([0, 10, 28, 36, 37, 38, 50, 90])):
            signature[position] = rng.randrange(2**32)
        rows["minhash"].append(signature)
        pool = [family * 1000 + j for j in range(-3, 4)] + [-(2**63), 2**63 - 1]
        rows["bands"].append([] if rng.random() < 0.05 else rng.sample(pool, rng.randrange(1, 4)))
    return pl.DataFrame(rows, schema={"id": pl.String, "exact_key": pl.String,
                                      "minhash": pl.List(pl.UInt32), "bands": pl.List(pl.Int64)})


def by_id(decisions: list[tuple]) -> dict[str, list[tuple]]:
    """Each row's decisions in their order: what the merge reads (its first edge names the
    near duplicate's detail)."""
    out: dict[str, list[tuple]] = {}
    for decision in decisions:
        out.setdefault(decision[0], []).append(decision)
    return out


@pytest.mark.parametrize("seed, d, threshold", [(1, 1, 0.7), (2, 1, 90 / 128), (3, 3, 0.7), (4, 5, 90 / 128)])
def test_a_bucket_decides_as_the_row_by_row_algorithm(seed, d, threshold):
    """90 / 128: a similarity exactly at the threshold is a near duplicate."""
    table = random_table(seed)
    every = []
    for b in range(d):
        want = reference(table, b, d, threshold)
        got = dedup.decide(table, b, d, threshold).rows()
        assert sorted(got) == sorted(want)
        assert by_id(got) == by_id(want)
        duplicates = [x for x in want if x[1] == "duplicate"]
        assert got[:len(duplicates)] == duplicates  # exact keys in order of first appearance
        every += want
    assert {x[1] for x in every} == {"duplicate", "near_duplicate"}
    assert {x[3] for x in every} & {0.7188, 0.7812}  # the rounding ties were met
    assert threshold != 90 / 128 or 0.7031 in {x[3] for x in every}  # and the threshold itself


def test_an_empty_table_has_no_decisions():
    empty = random_table(0, n=0)
    assert dedup.decide(empty, 0, 1, 0.7).schema == {"id": pl.String, "reason": pl.String,
                                                    "other": pl.String, "similarity": pl.Float64}


def test_a_bucket_turns_no_row_into_python_objects(tmp_path, monkeypatch):
    """A bucket that made every row a Python tuple and every candidate's signature a list of
    128 ints used ~9 KB a row (5.4 GB for 600k rows): it stays in columns, with the same
    decisions as the row-by-row algorithm."""
    out = build(tmp_path, 2, 0)

    def never(*args, **kwargs):
        raise AssertionError("rows turned into Python objects")
    with monkeypatch.context() as patched:
        for cls, name in ((pl.Series, "to_list"), (pl.DataFrame, "iter_rows"), (pl.DataFrame, "rows"),
                          (pl.DataFrame, "to_dicts"), (pl.Series, "__iter__")):
            patched.setattr(cls, name, never)
        assert dedup.run_bucket(out, 0, 1)["decisions"] == 7
    table = pl.concat([pl.read_parquet(storage.join(folder, "kept.parquet")).select(["id", *parts.SIGNATURES])
                       for _, folder in sorted(dedup.all_shards(out).items())])
    got = pl.read_parquet(storage.join(parts.bucket_dir(out, 0, 1), "decisions.parquet")).rows()
    assert sorted(got) == sorted(reference(table, 0, 1, 0.7))


# ---- finding the finished shards -------------------------------------------------------------------
@pytest.mark.parametrize("n", [3, 12])
def test_finished_shards_are_found_with_two_listings_whatever_their_count(tmp_path, monkeypatch, n):
    """One HEAD per finished shard made each shard's start-up cost N requests (N^2/2 a build)."""
    out = str(tmp_path / "out")
    for k in range(n):
        if k % 3 != 1:  # every third shard unfinished: its folder but no marker
            parts.finish(parts.shard_dir(out, k, n), {"k": k})
        storage.write_json(storage.join(parts.shard_dir(out, k, n), "stats.json"), {})
    storage.write_json(storage.join(out, "_work", "shards", "notes", "7-of-9", parts.MARKER), {})  # too deep
    storage.write_json(storage.join(out, "_work", "shards", "extra.json"), {})
    calls = []
    for name in ("ls", "exists", "is_file", "read_json", "read_bytes", "listing"):
        real = getattr(storage, name)
        monkeypatch.setattr(storage, name, lambda *a, _real=real, _name=name, **kw: calls.append(_name) or _real(*a, **kw))
    count, done = parts.completed(out, "shards")
    assert count == n and sorted(done) == [k for k in range(n) if k % 3 != 1]
    assert done[0] == parts.shard_dir(out, 0, n)
    assert calls == ["ls", "ls"]
    calls.clear()
    assert parts.completed(out, "dedup") == (0, {}) and calls == ["ls"]  # no folder yet
