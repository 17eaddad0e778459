"""One suite, every storage operation, run against a local folder (bare path and file:// URI) and
a real S3 API (moto's server on 127.0.0.1)."""

from __future__ import annotations

import gzip
import hashlib
import os
import threading

import pytest

from multiplt import storage
from multiplt.errors import MultipltError
from multiplt.storage import local as local_backend

MIB = 1 << 20


@pytest.fixture(params=["path", "file", "s3"])
def root(request, tmp_path):
    """The folder URI the test works under."""
    if request.param == "path":
        return str(tmp_path / "store")
    if request.param == "file":
        return "file://" + str(tmp_path / "store")
    return request.getfixturevalue("s3_bucket") + "/store"


def no_leftovers(root: str) -> None:
    """No temp files locally, no unfinished multipart uploads on S3."""
    path = storage.local_path(root)
    if path is not None:
        for _dirpath, _dirs, files in os.walk(path):
            assert not [f for f in files if f.endswith(local_backend.TEMP_SUFFIX)], files
    else:
        bucket = root[len("s3://"):].split("/", 1)[0]
        uploads = storage.s3.client().list_multipart_uploads(Bucket=bucket)
        assert not uploads.get("Uploads"), uploads


ROWS = [{"name": "HumanEval_0", "tests": "(check 1)\n", "n": 3, "ok": True, "uni": "λ"}, {"empty": None}]


@pytest.mark.parametrize("name,write,read,value", [
    ("a.bin", storage.write_bytes, storage.read_bytes, b"\x00\x01binary\xff"),
    ("a.txt", storage.write_text, storage.read_text, "line one\nλ two\n"),
    ("a.txt.gz", storage.write_text, storage.read_text, "gzipped text\n" * 50),
    ("a.json", storage.write_json, storage.read_json, {"k": [1, 2.5, "x", None]}),
    ("a.json.gz", storage.write_json, storage.read_json, {"completions": ["x"] * 20}),
    ("a.jsonl", storage.write_jsonl, storage.read_jsonl, ROWS),
    ("a.jsonl.gz", storage.write_jsonl, storage.read_jsonl, ROWS),
])
def test_round_trip(root, name, write, read, value):
    uri = storage.join(root, "sub", name)
    write(uri, value)
    assert read(uri) == value
    raw = storage.read_bytes(uri)
    assert raw.startswith(b"\x1f\x8b") == name.endswith(".gz")  # gzip exactly by suffix
    if name.endswith(".gz"):
        assert gzip.decompress(raw)
    no_leftovers(root)


def test_overwrite_replaces_whole_object(root):
    uri = storage.join(root, "x.txt")
    storage.write_text(uri, "a much longer first version\n")
    storage.write_text(uri, "short\n")
    assert storage.read_text(uri) == "short\n"


def test_parquet_round_trip(root):
    import polars as pl

    df = pl.DataFrame({"model": ["a/b", "c"], "pass@1": [0.25, 0.5], "n": [10, 20]})
    uri = storage.join(root, "results.parquet")
    storage.write_parquet(uri, df)
    assert storage.read_parquet(uri).equals(df)


def test_listing_exists_delete(root):
    for rel in ["b.json.gz", "a.json.gz", "a.results.json.gz", "_scores.csv", "sub/c.txt", "sub/deep/d.txt"]:
        storage.write_text(storage.join(root, rel), rel)
    j = lambda *p: storage.join(root, *p)  # noqa: E731
    assert storage.ls(root) == [j("_scores.csv"), j("a.json.gz"), j("a.results.json.gz"), j("b.json.gz"), j("sub") + "/"]
    assert storage.ls(root + "/") == storage.ls(root)
    assert storage.ls(j("sub"), recursive=True) == [j("sub/c.txt"), j("sub/deep/d.txt")]
    assert len(storage.ls(root, recursive=True)) == 6
    assert storage.ls(j("nothing-here")) == []
    assert storage.basename(j("a.json.gz")) == "a.json.gz"

    assert storage.exists(j("a.json.gz"))
    assert storage.exists(j("sub"))  # a folder holding files
    assert not storage.exists(j("missing.json"))
    assert not storage.exists(j("missing-folder"))

    storage.delete(j("a.json.gz"))
    assert not storage.exists(j("a.json.gz"))
    storage.delete(j("a.json.gz"))  # deleting what is gone is fine
    with pytest.raises(MultipltError, match="folder"):
        storage.delete(j("sub"))
    assert storage.exists(j("sub/c.txt"))
    storage.delete(j("sub"), recursive=True)
    assert not storage.exists(j("sub/deep/d.txt"))
    assert storage.ls(root) == [j("_scores.csv"), j("a.results.json.gz"), j("b.json.gz")]


def test_listing_has_sizes_and_etags_that_change_with_the_content(root):
    for rel, text in [("a.txt", "one"), ("sub/b.txt", "two!"), ("sub/deep/c.txt", "")]:
        storage.write_text(storage.join(root, rel), text)
    first = storage.listing(root)
    assert [f.uri for f in first] == storage.ls(root, recursive=True)
    assert [f.size for f in first] == [3, 4, 0]
    assert all(isinstance(f.etag, str) and f.etag for f in first)
    assert storage.listing(root) == first  # nothing changed, nothing differs
    storage.write_text(storage.join(root, "sub/b.txt"), "TWO!")  # same size, new content
    second = storage.listing(root)
    assert [f.etag == g.etag for f, g in zip(first, second)] == [True, False, True]
    assert storage.listing(storage.join(root, "nothing-here")) == []


def test_folder_upload_download_and_copy(root, tmp_path):
    src = tmp_path / "src"
    (src / "ckpt" / "nested").mkdir(parents=True)
    files = {"manifest.jsonl": b'{"epoch": 1}\n', "ckpt/config.json": b"{}", "ckpt/nested/w.bin": os.urandom(4096)}
    for rel, data in files.items():
        (src / rel).write_bytes(data)
    (src / f".half{local_backend.TEMP_SUFFIX}").write_bytes(b"in-progress write")  # never uploaded

    uploaded = storage.upload_dir(src, storage.join(root, "model"))
    assert sorted(uploaded) == sorted(storage.join(root, "model", rel) for rel in files)
    assert storage.read_bytes(storage.join(root, "model/ckpt/nested/w.bin")) == files["ckpt/nested/w.bin"]

    dst = tmp_path / "down"
    storage.download_dir(storage.join(root, "model"), dst)
    got = {os.path.relpath(os.path.join(d, f), dst): open(os.path.join(d, f), "rb").read()
           for d, _, fs in os.walk(dst) for f in fs}
    assert got == files

    storage.copy(storage.join(root, "model/manifest.jsonl"), storage.join(root, "copy/manifest.jsonl"))
    assert storage.read_jsonl(storage.join(root, "copy/manifest.jsonl")) == [{"epoch": 1}]
    storage.copy(storage.join(root, "copy/manifest.jsonl"), str(tmp_path / "local-copy.jsonl"))
    assert (tmp_path / "local-copy.jsonl").read_bytes() == files["manifest.jsonl"]
    no_leftovers(root)


def test_multipart_sized_object(root, tmp_path):
    """Above the multipart threshold: S3 gets a completed multipart upload, read back whole."""
    size = storage.s3.MULTIPART_THRESHOLD + MIB + 17
    data = os.urandom(MIB) * (size // MIB) + b"tail" * 4 + os.urandom(1)
    uri = storage.join(root, "big.bin")
    storage.write_bytes(uri, data)
    assert storage.read_bytes(uri) == data
    if uri.startswith("s3://"):
        bucket, key = uri[5:].split("/", 1)
        etag = storage.s3.client().head_object(Bucket=bucket, Key=key)["ETag"]
        assert "-" in etag, f"expected a multipart ETag, got {etag}"
    # the same through a file upload and a download
    big_file = tmp_path / "big-src.bin"
    big_file.write_bytes(data)
    storage.copy(str(big_file), storage.join(root, "big2.bin"))
    storage.copy(storage.join(root, "big2.bin"), str(tmp_path / "big-back.bin"))
    assert (tmp_path / "big-back.bin").read_bytes() == data
    no_leftovers(root)


def test_concurrent_writers_never_tear(root):
    """Writers race on one key (multipart-sized on S3); every read is one writer's whole payload."""
    size = storage.s3.MULTIPART_THRESHOLD + MIB
    payloads = [bytes([65 + i]) * size for i in range(3)]
    digests = {hashlib.sha256(p).hexdigest() for p in payloads}
    uri = storage.join(root, "contended.bin")
    storage.write_bytes(uri, payloads[0])
    stop = threading.Event()
    seen, errors = [], []

    def writer(payload):
        try:
            for _ in range(2):
                storage.write_bytes(uri, payload)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    def reader():
        while not stop.is_set():
            try:
                seen.append(hashlib.sha256(storage.read_bytes(uri)).hexdigest())
            except Exception as exc:
                errors.append(exc)
                return

    readers = [threading.Thread(target=reader) for _ in range(2)]
    writers = [threading.Thread(target=writer, args=(p,)) for p in payloads]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    assert not errors, errors
    assert seen and set(seen) <= digests
    assert hashlib.sha256(storage.read_bytes(uri)).hexdigest() in digests
    no_leftovers(root)


def test_missing_key_is_a_clear_error(root):
    uri = storage.join(root, "nope", "HumanEval_1.json.gz")
    for read in (storage.read_bytes, storage.read_json, storage.read_jsonl):
        with pytest.raises(storage.NotFound, match="HumanEval_1.json.gz"):
            read(uri)
    with pytest.raises(storage.NotFound, match="HumanEval_1.json.gz"):
        storage.copy(uri, storage.join(root, "elsewhere.json.gz"))


def test_failed_writes_leave_nothing(root):
    uri = storage.join(root, "rows.jsonl")

    def rows():
        yield {"ok": 1}
        raise ValueError("row generator failed")

    with pytest.raises(ValueError):
        storage.write_jsonl(uri, rows())
    with pytest.raises(TypeError):
        storage.write_json(uri, {"not json": object()})
    assert not storage.exists(uri)
    assert storage.ls(root) == []
    no_leftovers(root)


def test_corrupt_content_errors_name_the_uri(root):
    storage.write_bytes(storage.join(root, "bad.json"), b"{not json")
    storage.write_bytes(storage.join(root, "bad.jsonl"), b'{"a": 1}\n{oops\n')
    storage.write_bytes(storage.join(root, "bad.txt.gz"), b"not gzip at all")
    with pytest.raises(MultipltError, match="bad.json is not valid JSON"):
        storage.read_json(storage.join(root, "bad.json"))
    with pytest.raises(MultipltError, match="bad.jsonl line 2"):
        storage.read_jsonl(storage.join(root, "bad.jsonl"))
    storage.write_bytes(storage.join(root, "list.jsonl"), b'{"a": 1}\n\n5\n')
    with pytest.raises(MultipltError, match="list.jsonl line 3 is not a JSON object"):
        storage.read_jsonl(storage.join(root, "list.jsonl"))
    with pytest.raises(MultipltError, match="bad.txt.gz is not valid gzip"):
        storage.read_text(storage.join(root, "bad.txt.gz"))


@pytest.mark.parametrize("uri,problem", [
    ("", "bad storage URI"),
    ("http://example.com/x.json", "unsupported scheme 'http'"),
    ("gs://bucket/x.json", "unsupported scheme 'gs'"),
    ("s3://", "no bucket"),
    ("s3:///key.json", "no bucket"),
    ("s3://Bad_Bucket/key.json", "not a valid S3 bucket name"),
    ("s3://bucket/a//b.json", "empty path segment"),
    ("file://otherhost/x.json", "name no host"),
])
def test_bad_uri_is_a_clear_error(uri, problem):
    for op in (storage.read_bytes, storage.exists, storage.ls):
        with pytest.raises(MultipltError, match=problem) as info:
            op(uri)
        assert repr(uri) in str(info.value)


def test_missing_bucket_is_a_clear_error(s3_server):
    uri = "s3://no-such-bucket-multiplt/x/y.json"
    for op in (storage.read_json, storage.exists, storage.ls, lambda u: storage.write_text(u, "x")):
        with pytest.raises(MultipltError, match="bucket 'no-such-bucket-multiplt' does not exist"):
            op(uri)


def test_named_profile_and_missing_credentials(s3_bucket, s3_server, tmp_path, monkeypatch):
    """A named profile (endpoint + keys in the AWS config files) works as well as the env vars."""
    storage.write_text(storage.join(s3_bucket, "p.txt"), "via env")
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server)  # the S3-only endpoint variable works too
    assert storage.read_text(storage.join(s3_bucket, "p.txt")) == "via env"
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    config = tmp_path / "aws-config"
    config.write_text(f"[profile minio]\nregion = us-east-1\nendpoint_url = {s3_server}\n"
                      "aws_access_key_id = testing\naws_secret_access_key = testing\n")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "minio")
    assert storage.read_text(storage.join(s3_bucket, "p.txt")) == "via env"

    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    with pytest.raises(MultipltError, match="no-such-profile"):
        storage.exists(storage.join(s3_bucket, "p.txt"))


def test_local_write_under_a_file_is_a_clear_error(tmp_path):
    storage.write_text(str(tmp_path / "a"), "a file")
    with pytest.raises(MultipltError, match="a parent of it is a file"):
        storage.write_text(str(tmp_path / "a" / "b.txt"), "x")
    with pytest.raises(MultipltError, match="is a folder"):
        storage.read_text(str(tmp_path))
