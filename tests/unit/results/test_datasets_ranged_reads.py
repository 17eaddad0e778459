"""The Datasets page reads a parquet object in S3 (moto's server) in byte ranges: its rows from the
footer alone, its `model` values (only without a config) and excluded reasons from those columns
alone. It used to download every changed object whole: a 500 MB data file cost 500 MB per change
per view for a row count."""

from __future__ import annotations

import collections
import random

import polars as pl
import pytest

from multiplt import storage
from multiplt.errors import PlatformError
from multiplt.results import datasets
from tests.support.chain_folders import write_chain
from tests.unit.results.test_datasets import by_title, check_chain

BIG = "translate/data/racket-00000-of-00001.parquet"


@pytest.fixture
def served(s3_bucket):
    """{key: [bytes sent by each GetObject of it]} of storage's S3 client while the test runs."""
    sent: dict[str, list[int]] = collections.defaultdict(list)
    asked: list[str] = []
    events = storage.STORES["s3"].client().meta.events

    def ask(params, **_):
        asked.append(params["Key"])

    def answer(parsed, **_):
        sent[asked[-1]].append(parsed.get("ContentLength", 0))

    events.register("before-parameter-build.s3.GetObject", ask)
    events.register("after-call.s3.GetObject", answer)
    yield sent
    events.unregister("before-parameter-build.s3.GetObject", ask)
    events.unregister("after-call.s3.GetObject", answer)


def big_data_file(uri: str, rows: int = 4000) -> int:
    """A translate data file of `rows` rows of 1 KB of incompressible `content` each, after a
    `model` column (at the start of the file, far from the footer); its size in bytes."""
    rng = random.Random(3)
    frame = pl.DataFrame({"model": ["tiny/coder"] * rows, "revision": [None] * rows,
                          "content": [rng.randbytes(512).hex() for _ in range(rows)]})
    datasets.CACHE.clear()
    storage.write_parquet(uri, frame)
    return next(i.size for i in storage.listing(uri.rsplit("/", 1)[0]) if i.uri == uri)


def test_the_rows_of_a_large_s3_parquet_object_come_from_its_footer_only(s3_bucket, served):
    root = f"{s3_bucket}/runs"
    write_chain(root)
    size = big_data_file(f"{root}/{BIG}")
    assert size > 2_000_000
    served.clear()
    got = by_title(datasets.discover(root))
    assert got["translation racket"].rows == 4000 and got["translation racket"].error is None
    assert got["translation racket"].model == "tiny/coder"  # from the config: the column is not read
    assert len(served[f"runs/{BIG}"]) == 1
    assert served[f"runs/{BIG}"][0] <= storage.PARQUET_FOOTER_READ  # the footer, not 2 MB
    # every other object of the chain is small: read whole, once each, as before
    assert all(len(sizes) == 1 for sizes in served.values())


def test_the_model_column_is_read_alone_and_with_the_footer_already_read(s3_bucket, served):
    root = f"{s3_bucket}/runs"
    write_chain(root)
    storage.delete(f"{root}/translate/config", recursive=True)  # the model comes from the rows
    size = big_data_file(f"{root}/{BIG}")
    served.clear()
    got = by_title(datasets.discover(root))
    assert (got["translation racket"].rows, got["translation racket"].model) == (4000, "tiny/coder")
    sizes = served[f"runs/{BIG}"]
    assert len(sizes) == 2 and sizes[0] <= storage.PARQUET_FOOTER_READ  # opened once: the footer
    assert sizes[1] <= storage.PARQUET_FOOTER_READ < size / 30  # and the `model` column, not `content`
    served.clear()
    assert by_title(datasets.discover(root))["translation racket"].model == "tiny/coder"
    assert not served  # unchanged: nothing read again (datasets.CACHE)


def test_s3_and_a_local_copy_show_the_same_values(s3_bucket, tmp_path):
    """The page's values for objects read in ranges (pyarrow) are those of the local files (read
    in place, as before), errors of unreadable files included up to their detail."""
    roots = [f"{s3_bucket}/runs", f"file://{tmp_path}/runs"]
    for root in roots:
        write_chain(root)
        big_data_file(f"{root}/{BIG}", rows=50)
        storage.delete(f"{root}/translate/config", recursive=True)
        storage.write_bytes(f"{root}/corpus/stdlib/excluded/part-00001.parquet", b"PAR1 not parquet")
        good = f"{root}/testgen/tests/shard-00000-of-00002.parquet"
        storage.write_bytes(f"{root}/testgen/tests/shard-00001-of-00002.parquet", storage.read_bytes(good)[:-30])

    def facts(root):
        return [(d.title, d.kind, d.rows, d.bytes, d.model, d.revision, d.steps, d.published,
                 d.error and d.error.replace(root, "ROOT").split(" is not a readable parquet file: ")[0])
                for d in datasets.discover(root)]

    s3, local = facts(roots[0]), facts(roots[1])
    assert s3 == local
    errors = {title: error for title, *_rest, error in s3 if error}
    assert errors == {"corpus (stdlib)": "ROOT/corpus/stdlib/excluded/part-00001.parquet",
                      "tests (testgen)": "ROOT/testgen/tests/shard-00001-of-00002.parquet"}
    assert by_title(datasets.discover(roots[0]))["translation lua"].model is None


def test_a_failed_ranged_read_is_not_kept(s3_bucket, monkeypatch):
    root = f"{s3_bucket}/runs"
    write_chain(root)
    real = storage.read_range

    def broken(uri, *args):
        if uri.endswith("/racket-00000-of-00001.parquet"):
            raise PlatformError(f"cannot read {uri}: connection reset")
        return real(uri, *args)

    monkeypatch.setattr(storage, "read_range", broken)
    assert "connection reset" in by_title(datasets.discover(root))["translation racket"].error
    monkeypatch.setattr(storage, "read_range", real)
    check_chain(datasets.discover(root), root)


def test_an_object_rewritten_while_it_is_read_is_not_kept(s3_bucket, monkeypatch):
    """The footer of one version and a column of the next are never mixed: the read is an error
    for this view (storage.Changed), and the next view reads the new version."""
    root = f"{s3_bucket}/runs"
    write_chain(root)
    storage.delete(f"{root}/translate/config", recursive=True)
    uri = f"{root}/{BIG}"
    big_data_file(uri)
    real = storage.read_range

    def rewritten_after_the_footer(target, start, length, etag=None):
        if target == uri and etag is not None:  # the first read (the footer) is done
            monkeypatch.setattr(storage, "read_range", real)
            storage.write_parquet(uri, pl.DataFrame({"content": ["x"] * 7, "model": ["new/coder"] * 7}))
        return real(target, start, length, etag)

    monkeypatch.setattr(storage, "read_range", rewritten_after_the_footer)
    first = by_title(datasets.discover(root))["translation racket"]
    assert first.error == f"{uri} changed while it was being read; read it again"
    again = by_title(datasets.discover(root))["translation racket"]
    assert (again.rows, again.model, again.error) == (7, "new/coder", None)
