"""One storage API over local files (``file://`` URIs and bare paths) and S3 (``s3://bucket/key``).

Every stage reads and writes through these functions, so the same command works on a laptop and
in a container against AWS or MinIO. Formats ride on bytes: text (UTF-8), JSON, JSON lines and
parquet; a ``.gz`` suffix gzips text, JSON and JSON lines. A large file need not be read whole:
`open_ranged` is a seekable file object that reads only the byte ranges asked for (a parquet
file's footer: `parquet_rows`, `parquet_file`), `open_stream` a stream read as it is consumed.
Every write is atomic (see local.py and s3.py): a reader sees the previous object or the complete
new one, never a torn one.
`read_versioned` and `write_bytes_if` make a read-modify-write safe against concurrent writers
(compare-and-swap on the object's version; S3 conditional writes); `update` is that loop, retried.

    from multiplt import storage
    rows = storage.read_jsonl("s3://bucket/bench/humaneval-rkt.jsonl")
    storage.write_json(storage.join(out, "HumanEval_0.json.gz"), problem)
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import random
import time
from typing import Callable, Iterator

from multiplt.errors import MultipltError, PlatformError
from multiplt.storage import local, s3
from multiplt.storage.base import Changed, ConditionalWriteUnsupported, ObjectInfo, Store
from multiplt.storage.local import AtomicFile, FolderLock, cannot_write, file_above
from multiplt.storage.ranged import BLOCK_SIZE, RangedFile
from multiplt.storage.uri import NotFound, basename, join, local_path, parse

__all__ = [
    "AtomicFile", "Changed", "ConditionalWriteUnsupported", "FolderLock", "NotFound", "ObjectInfo", "basename", "cannot_write",
    "copy", "create", "decode_json", "delete", "download_dir", "encode_json", "exists", "file_above", "is_file",
    "join", "jsonl_lines", "listing", "local_path", "ls", "open_ranged", "open_stream", "parquet_file",
    "parquet_rows", "read_bytes", "read_json", "read_jsonl", "read_parquet", "read_range", "read_text",
    "read_versioned",
    "update", "upload_dir", "write_bytes", "write_bytes_if", "write_json", "write_jsonl",
    "write_parquet",
    "write_text",
]

LOG = logging.getLogger("multiplt.storage")
#: the backend of each URI scheme (`uri.parse` knows no other schemes)
STORES: dict[str, Store] = {"file": local, "s3": s3}


def _backend(loc) -> Store:
    return STORES[loc.scheme]


# ---- bytes ---------------------------------------------------------------------------------------
def read_bytes(uri) -> bytes:
    """The raw bytes stored at `uri` (no decompression)."""
    loc = parse(uri)
    return _backend(loc).read_bytes(loc)


def read_range(uri, start: int, length: int, etag: str | None = None) -> tuple[bytes, int, str]:
    """Up to `length` bytes of the file at `uri` from byte `start` (negative: that many bytes
    before its end), with the file's size and version tag: (bytes, size, etag). On S3 one GET
    with a Range header. With an `etag` (from an earlier call), only from that version: a file
    rewritten since raises `Changed`."""
    loc = parse(uri)
    return _backend(loc).read_range(loc, start, length, etag)


def open_ranged(uri, *, tail: int = 0, block_size: int = BLOCK_SIZE,
                cache_bytes: int | None = None) -> RangedFile:
    """A seekable read-only file object (read/seek/tell) over the file at `uri`, reading only the
    byte ranges asked for (read_range), a small read rounded up to `block_size` bytes ahead and
    kept (at most `cache_bytes`, by default 4 blocks), all of one version of the file (a rewrite
    while it is read is `Changed`). Opening it makes one request: the last `tail` bytes when
    `tail` > 0 (a parquet footer), else the first block; a missing file is NotFound at once.
    Close it when done (it is a context manager)."""
    loc = parse(uri)

    def fetch(start: int, length: int, etag: str | None) -> tuple[bytes, int, str]:
        return read_range(loc.uri, start, length, etag)

    return RangedFile(loc.uri, fetch, block_size=block_size, cache_bytes=cache_bytes, tail=tail)


def open_stream(uri):
    """The file at `uri` as a binary stream (read(n), iteration by lines), read front to back as it
    is consumed: a local file opened, an S3 object's body (one GET; a body cut short is resumed
    from the same version). Close it when done (it is a context manager)."""
    loc = parse(uri)
    return _backend(loc).open_stream(loc)


def write_bytes(uri, data: bytes, durable: bool = True) -> None:
    """Store `data` at `uri` atomically, creating parent folders as needed. `durable=False`
    skips the flush to disk of a local file before it replaces the old one: still atomic for
    every reader and after a crash of the writing process, but not after a crash of the machine
    (for files rewritten many times a second, whose last version is written durably)."""
    loc = parse(uri)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"write_bytes wants bytes, got {type(data).__name__}")
    _backend(loc).write_bytes(loc, bytes(data), durable=durable)


def read_versioned(uri) -> tuple[bytes, str]:
    """The raw bytes at `uri` and the version tag (ETag, as `listing` gives it) of the very version
    they were read from, to pass to `write_bytes_if`."""
    loc = parse(uri)
    return _backend(loc).read_versioned(loc)


def write_bytes_if(uri, data: bytes, etag: str | None) -> bool:
    """Compare-and-swap: store `data` at `uri` atomically only if it still holds the version
    `etag` (from `read_versioned`), or, with `etag=None`, only if nothing is there yet. True when
    written; False, writing nothing, when another writer changed, created or deleted it first:
    read again, redo the change, and try again. S3: one PUT with If-Match/If-None-Match (at most
    5 GiB); a server answering 501 NotImplemented raises `ConditionalWriteUnsupported`, and one
    that ignores the headers writes unconditionally (it cannot be told apart). Local files: safe
    among writers that use this function (an flock on the file being replaced)."""
    loc = parse(uri)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"write_bytes_if wants bytes, got {type(data).__name__}")
    return _backend(loc).write_bytes_if(loc, bytes(data), etag)


def create(uri, data: bytes, unsupported: str) -> bool:
    """Write `data` at `uri` only if nothing is there (write_bytes_if with no version: of writers
    at once, one wins); True when this call wrote it. A server without conditional writes gets a
    plain write where nothing is there, with a warning naming the file and then `unsupported`
    (what writers starting at the same moment may then do)."""
    try:
        return write_bytes_if(uri, data, None)
    except ConditionalWriteUnsupported as exc:
        LOG.warning("%s: %s; written without it: %s", uri, exc, unsupported)
        if exists(uri):
            return False
        write_bytes(uri, data)
        return True


def write_if_changed(uri, data: bytes) -> bool:
    """write_bytes unless `uri` already holds exactly `data` (a rerun of finished work then
    writes nothing); True when written."""
    if exists(uri) and read_bytes(uri) == bytes(data):
        return False
    write_bytes(uri, data)
    return True


def _gzipped(uri) -> bool:
    return os.fspath(uri).endswith(".gz")


# ---- text, JSON, JSON lines ----------------------------------------------------------------------
def read_text(uri) -> str:
    return _text(uri, read_bytes(uri))


def _text(uri, data: bytes) -> str:
    """The text stored as `data` at `uri` (gunzipped for a .gz name)."""
    if _gzipped(uri):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise MultipltError(f"{uri} is not valid gzip: {exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MultipltError(f"{uri} is not UTF-8 text: {exc}") from None


def _stored(uri, text: str) -> bytes:
    """The bytes `text` is stored as at `uri` (gzipped for a .gz name)."""
    data = text.encode("utf-8")
    if _gzipped(uri):
        data = gzip.compress(data, compresslevel=6, mtime=0)  # mtime=0: same input, same bytes
    return data


def write_text(uri, text: str, if_changed: bool = False) -> None:
    """`if_changed`: nothing is written when `uri` already holds this text (write_if_changed)."""
    data = _stored(uri, text)
    if if_changed:
        write_if_changed(uri, data)
    else:
        write_bytes(uri, data)


def read_json(uri):
    return _json(uri, read_text(uri))


def _json(uri, text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise MultipltError(f"{uri} is not valid JSON: {exc}") from None


def decode_json(uri, data: bytes):
    """The JSON value stored as `data` at `uri` (gunzipped for a .gz name), with read_json's
    errors: the decoding half of read_json, for bytes read otherwise (e.g. by `update`)."""
    return _json(uri, _text(uri, data))


def encode_json(uri, value, indent: int | None = None) -> bytes:
    """The bytes write_json stores `value` as at `uri` (gzipped for a .gz name)."""
    return _stored(uri, json.dumps(value, indent=indent) + "\n")


def write_json(uri, value, indent: int | None = None, if_changed: bool = False) -> None:
    write_text(uri, json.dumps(value, indent=indent) + "\n", if_changed=if_changed)


# ---- read-merge-write ----------------------------------------------------------------------------
#: compare-and-swap attempts of `update` before it gives up, and the backoff between them (a
#: random wait up to UPDATE_BACKOFF_S doubled per attempt, at most UPDATE_BACKOFF_MAX_S)
UPDATE_ATTEMPTS = 16
UPDATE_BACKOFF_S = 0.02
UPDATE_BACKOFF_MAX_S = 1.0


#: the `unsupported` texts of update whose warning was logged (once each)
_WARNED_UNCONDITIONAL: set[str] = set()


def update(uri, merge: Callable[[bytes | None], bytes | None], *, gave_up: str,
           attempts: int = UPDATE_ATTEMPTS, backoff_s: float = UPDATE_BACKOFF_S,
           backoff_max_s: float = UPDATE_BACKOFF_MAX_S,
           unsupported: str | None = None,
           confirm: Callable[[], bool] | None = None, log: logging.Logger = LOG) -> bytes | None:
    """A read-merge-write of `uri` that no other writer comes between, without a lock (object
    storage has none): read the bytes with their version tag (read_versioned; None when there is
    no object), `merge` them into the bytes to store (None: nothing to store, and nothing is
    written), and store those only if `uri` still holds the version read (write_bytes_if). When
    another writer changed, created or deleted it in between, wait a random while (up to
    `backoff_s` doubled per attempt, at most `backoff_max_s`; an INFO line on `log`) and read and
    merge again: at most `attempts` times, then PlatformError(`gave_up`). `merge`
    runs once per attempt on the bytes of that attempt, so what it records of its last call is
    what was written. `confirm`, when given, is asked after each successful write whether the
    change is still there (by reading it back: a server that ignores the conditions is caught
    when the change was lost before that read); False counts as a lost race. A server without
    conditional writes (ConditionalWriteUnsupported): with `unsupported` (what writers at once
    may then do, as storage.create takes it), the bytes `merge` made are written plainly, with a
    warning on `log` naming the file and then `unsupported`, once per text of `unsupported` in
    this process (a caller that writes many files names their folder in it); without it the
    exception reaches the caller. Returns the bytes written; None when `merge` said there is
    nothing to write."""
    if attempts < 1:
        raise ValueError(f"update needs at least 1 attempt, got {attempts}")
    for attempt in range(attempts):
        try:
            data, etag = read_versioned(uri)
        except NotFound:
            data, etag = None, None
        new = merge(data)
        if new is None:
            return None
        try:
            written = write_bytes_if(uri, new, etag)
        except ConditionalWriteUnsupported as exc:
            if unsupported is None:
                raise
            if unsupported not in _WARNED_UNCONDITIONAL:
                _WARNED_UNCONDITIONAL.add(unsupported)
                log.warning("%s: %s; written without it: %s", uri, exc, unsupported)
            write_bytes(uri, new)
            return new
        if written and (confirm is None or confirm()):
            return new
        if attempt + 1 < attempts:
            wait = random.uniform(0, min(backoff_max_s, backoff_s * 2 ** attempt))
            log.info("%s changed since it was read (attempt %d of %d); merging again in %.2fs",
                     uri, attempt + 1, attempts, wait)
            time.sleep(wait)
    raise PlatformError(gave_up)


def jsonl_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number from 1, line) of each non-blank line of a JSONL text. Lines end at "\n" (a
    "\r" before it is dropped) and nowhere else: str.splitlines would also cut at U+2028,
    U+0085, form feeds and the like, which JSON allows raw inside strings."""
    for number, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        if line.strip():
            yield number, line


def read_jsonl(uri) -> list[dict]:
    """The JSON objects of a JSONL file, one per non-blank line (jsonl_lines); any other line is
    an error naming its number."""
    return [jsonl_object(uri, number, line) for number, line in jsonl_lines(read_text(uri))]


def jsonl_object(uri, number: int, line: str) -> dict:
    """Line `number` of the JSONL file `uri` as the JSON object it must be; anything else is an
    error naming the file and line."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise MultipltError(f"{uri} line {number} is not valid JSON: {exc}") from None
    if not isinstance(row, dict):
        raise MultipltError(f"{uri} line {number} is not a JSON object (got {type(row).__name__})")
    return row


def write_jsonl(uri, rows) -> None:
    """One JSON value per line. The whole file is built first, so a failing row writes nothing."""
    write_text(uri, "".join(json.dumps(row) + "\n" for row in rows))


# ---- parquet (polars, imported only when used) ---------------------------------------------------
def read_parquet(uri):
    """A polars DataFrame of the parquet file at `uri`."""
    import polars as pl

    data = read_bytes(uri)
    try:
        return pl.read_parquet(io.BytesIO(data))
    except Exception as exc:  # polars raises several types for a bad file
        raise MultipltError(f"{uri} is not a readable parquet file: {exc}") from None


#: the bytes at the end of a parquet file read when it is opened in ranges: its footer (the
#: metadata and the 8 bytes after it) whole for most files, in one request (pyarrow's own
#: first read of a footer is 64 KiB, so it is served from these)
PARQUET_FOOTER_READ = 64 << 10


def parquet_rows(uri) -> int:
    """Rows of the parquet file at `uri`, from its footer: a local file is not read whole, an S3
    object only in its last bytes (open_ranged: one request for most files)."""
    import polars as pl

    path = local_path(uri)
    if path is None:
        with open_ranged(uri, tail=PARQUET_FOOTER_READ) as f:
            return parquet_file(uri, f).metadata.num_rows
    try:
        return pl.scan_parquet(path).select(pl.len()).collect().item()
    except Exception as exc:  # noqa: BLE001 - polars raises several types for a bad file
        raise MultipltError(f"{uri} is not a readable parquet file: {exc}") from None


def parquet_file(uri, source, buffer_size: int = 0):
    """A pyarrow ParquetFile over `source` (a file object of the file at `uri`: open_ranged's),
    which reads its footer now and each column chunk as it is needed (no pre-buffering; with a
    `buffer_size`, a page at a time). A file that is no parquet (truncated, corrupt, empty) is
    one MultipltError naming `uri`; the errors of reading `source` pass as they are."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(source, pre_buffer=False, buffer_size=buffer_size)
    except MultipltError:
        raise
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise MultipltError(f"{uri} is not a readable parquet file: {exc}") from None


def write_parquet(uri, df) -> None:
    buffer = io.BytesIO()
    df.write_parquet(buffer)
    write_bytes(uri, buffer.getvalue())


# ---- listing, existence, deletion ----------------------------------------------------------------
def exists(uri) -> bool:
    """True for a file/object, or for a folder (prefix) holding at least one (local: any folder)."""
    loc = parse(uri)
    return _backend(loc).exists(loc)


def is_file(uri) -> bool:
    """True for a file/object at `uri` itself; False for a folder (prefix) or nothing. On S3 one
    HEAD request: a folder there is only a prefix, so an object and a folder may share a name."""
    loc = parse(uri)
    return _backend(loc).is_file(loc)


def ls(uri, recursive: bool = False) -> list[str]:
    """Sorted full URIs under the folder `uri`: its files, and its subfolders with a trailing `/`;
    with recursive=True every file below it (no folders). A missing folder lists as empty; temp
    files of writes in progress never appear."""
    loc = parse(uri)
    return _backend(loc).ls(loc, recursive)


def listing(uri) -> list[ObjectInfo]:
    """Every file below the folder `uri` (recursively) with its size and ETag, sorted by URI;
    a missing folder lists as empty. Comparing ETags tells whether a folder changed."""
    loc = parse(uri)
    return _backend(loc).listing(loc)


def delete(uri, recursive: bool = False) -> None:
    """Delete a file/object (missing is fine); a folder only with recursive=True."""
    loc = parse(uri)
    _backend(loc).delete(loc, recursive)


# ---- copies --------------------------------------------------------------------------------------
def copy(src_uri, dst_uri) -> None:
    """Copy one file/object between any two URIs (streamed; server-side within S3)."""
    src, dst = parse(src_uri), parse(dst_uri)
    if src.scheme == dst.scheme:
        _backend(src).copy(src, dst)
    elif dst.is_local:
        _backend(src).get_file(src, dst.path)
    else:  # a local file to a remote store
        if not os.path.isfile(src.path):
            raise NotFound(f"no such file: {src.uri}")
        _backend(dst).put_file(dst, src.path)


def upload_dir(local_dir, uri) -> list[str]:
    """Copy every file below the local folder `local_dir` to the same relative keys under `uri`."""
    root = os.fspath(local_dir)
    if not os.path.isdir(root):
        raise MultipltError(f"cannot upload {root}: not a folder")
    written = []
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            if local.is_temp(name):
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")
            target = join(uri, rel)
            copy(os.path.join(dirpath, name), target)
            written.append(target)
    return written


def download_dir(uri, local_dir) -> list[str]:
    """Copy every file below the folder `uri` into the local folder `local_dir` (same layout)."""
    prefix = os.fspath(uri).rstrip("/") + "/"
    files = ls(uri, recursive=True)
    root = os.fspath(local_dir)
    os.makedirs(root, exist_ok=True)
    written = []
    for src in files:
        rel = src[len(prefix):]
        if not rel or rel.startswith("/") or ".." in rel.split("/"):
            raise MultipltError(f"refusing to download {src}: unsafe relative path {rel!r}")
        dst = os.path.join(root, *rel.split("/"))
        copy(src, dst)
        written.append(dst)
    return written
