"""What dataset discovery reads: the listing is indexed once (the work grows with the files of the
datasets, not with the listing times its funnel folders), and on S3 (moto's server) one discover
downloads each object at most once, and the next discover only what changed (datasets.CACHE)."""

from __future__ import annotations

import collections

import pytest

from multiplt import storage
from multiplt.errors import PlatformError
from multiplt.results import datasets
from multiplt.storage import ObjectInfo
from tests.support.chain_folders import parquet, write_chain
from tests.unit.results.test_datasets import by_title, check_chain


class _CountedStr(str):
    """A URI that counts the prefix and suffix tests made on it (in `tests`)."""

    tests = 0

    def startswith(self, *args):
        _CountedStr.tests += 1
        return str.startswith(self, *args)

    def endswith(self, *args):
        _CountedStr.tests += 1
        return str.endswith(self, *args)


def test_the_listing_is_not_scanned_once_per_funnel_folder(tmp_path, monkeypatch):
    """30 shard funnel folders (no dataset) and 3000 files of run folders beside a chain: finding
    the datasets tests fewer URIs than the listing holds (a scan per funnel folder and kind
    would test each of the 3000 files 90 times)."""
    root = f"file://{tmp_path}"
    write_chain(root)
    extra = [storage.join(root, "testgen", "t1", "work", f"{s:05d}-of-00030", name) for s in range(30)
             for name in ("config.json", "funnel.json")]
    extra += [f"{root}/evaluate/run{r:03d}/HumanEval_{p}.results.json.gz"
              for r in range(30) for p in range(100)]
    real = storage.listing

    def listing(uri):
        infos = real(uri) + [ObjectInfo(u, 10, "e") for u in extra]  # never read: in no dataset
        return sorted((ObjectInfo(_CountedStr(i.uri), i.size, i.etag) for i in infos), key=lambda i: i.uri)

    monkeypatch.setattr(storage, "listing", listing)
    _CountedStr.tests = 0
    found = datasets.discover(root)
    check_chain(found, root)
    assert _CountedStr.tests < len(extra), _CountedStr.tests


@pytest.fixture
def gets(s3_bucket):
    """The keys of the GetObject requests storage's S3 client sends while the test runs."""
    keys: list[str] = []
    client = storage.STORES["s3"].client()

    def record(params, **_):
        keys.append(params["Key"])

    client.meta.events.register("before-parameter-build.s3.GetObject", record)
    yield keys
    client.meta.events.unregister("before-parameter-build.s3.GetObject", record)


def test_one_discover_downloads_each_s3_object_once_and_the_next_only_what_changed(s3_bucket, gets):
    root = f"{s3_bucket}/runs"
    write_chain(root)
    first = datasets.discover(root)
    check_chain(first, root)
    twice = [key for key, n in collections.Counter(gets).items() if n > 1]
    assert gets and not twice, twice  # e.g. translate's funnel.json serves both splits

    gets.clear()
    assert datasets.discover(root) == first and gets == []  # unchanged: nothing downloaded

    parquet(f"{root}/translate/data/racket-00000-of-00001.parquet",
            [{"content": "x", "model": "tiny/coder", "revision": None}] * 5)
    storage.write_json(f"{root}/translate/published.json", {"repo": "me/other"})
    gets.clear()
    got = by_title(datasets.discover(root))
    assert sorted(gets) == ["runs/translate/data/racket-00000-of-00001.parquet",
                            "runs/translate/published.json"]
    assert got["translation racket"].rows == 5 and got["translation lua"].published == {"repo": "me/other"}
    assert got["translation racket"].published is not got["translation lua"].published


def test_the_model_column_comes_from_the_same_download_as_the_rows(s3_bucket, gets):
    root = f"{s3_bucket}/runs"
    write_chain(root)
    storage.delete(f"{root}/translate/config", recursive=True)
    for _view in range(2):
        got = by_title(datasets.discover(root))
        assert got["translation racket"].model == "tiny/coder" and got["translation racket"].rows == 2
        assert got["translation lua"].model is None
    assert gets.count("runs/translate/data/racket-00000-of-00001.parquet") == 1


def test_an_unreadable_s3_file_keeps_its_error_without_being_downloaded_again(s3_bucket, gets):
    root = f"{s3_bucket}/runs"
    write_chain(root)
    storage.write_bytes(f"{root}/translate/data/lua-00001-of-00001.parquet", b"not parquet")
    storage.write_bytes(f"{root}/corpus/stdlib/excluded/part-00001.parquet", b"nor this")
    first = by_title(datasets.discover(root))
    assert "lua-00001-of-00001.parquet is not a readable parquet file" in first["translation lua"].error
    assert "part-00001.parquet is not a readable parquet file" in first["corpus (stdlib)"].error
    gets.clear()
    again = by_title(datasets.discover(root))
    assert gets == [] and [d.error for d in again.values()] == [d.error for d in first.values()]


def test_a_failed_download_is_not_kept(s3_bucket, gets, monkeypatch):
    """(A parquet object is read in ranges: read_range; a JSON object whole: read_versioned.)"""
    root = f"{s3_bucket}/runs"
    write_chain(root)
    real_range, real_versioned = storage.read_range, storage.read_versioned

    def broken_range(uri, *args):
        if uri.endswith("/racket-00000-of-00001.parquet"):
            raise PlatformError(f"cannot read {uri}: connection reset")
        return real_range(uri, *args)

    def broken_versioned(uri):
        if uri.endswith("/translate/published.json"):
            raise PlatformError(f"cannot read {uri}: connection reset")
        return real_versioned(uri)

    monkeypatch.setattr(storage, "read_range", broken_range)
    monkeypatch.setattr(storage, "read_versioned", broken_versioned)
    assert "connection reset" in by_title(datasets.discover(root))["translation racket"].error
    assert "connection reset" in by_title(datasets.discover(root))["translation lua"].error
    monkeypatch.setattr(storage, "read_range", real_range)
    monkeypatch.setattr(storage, "read_versioned", real_versioned)
    check_chain(datasets.discover(root), root)


def test_the_cache_of_s3_reads_is_bounded(s3_bucket, gets, monkeypatch):
    root = f"{s3_bucket}/runs"
    write_chain(root)
    monkeypatch.setattr(datasets, "CACHE_ENTRIES", 3)
    check_chain(datasets.discover(root), root)
    assert len(datasets.CACHE) == 3
    monkeypatch.setattr(datasets, "CACHE_ENTRIES", 1000)
    monkeypatch.setattr(datasets, "CACHE_BYTES", 2000)
    datasets.CACHE.clear()
    check_chain(datasets.discover(root), root)
    assert 0 < datasets.CACHE.weight <= 2000 and 1 < len(datasets.CACHE) < 18
