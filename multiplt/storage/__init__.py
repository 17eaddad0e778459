"""One storage API over local files (``file://`` URIs and bare paths) and S3 (``s3://bucket/key``).

Every stage reads and writes through these functions, so the same command works on a laptop and
in a container against AWS or MinIO. Formats ride on bytes: text (UTF-8), JSON, JSON lines and
parquet; a ``.gz`` suffix gzips text, JSON and JSON lines. Every write is atomic (see local.py and
s3.py): a reader sees the previous object or the complete new one, never a torn one.
`read_versioned` and `write_bytes_if` make a read-modify-write safe against concurrent writers
(compare-and-swap on the object's version; S3 conditional writes).

    from multiplt import storage
    rows = storage.read_jsonl("s3://bucket/bench/humaneval-rkt.jsonl")
    storage.write_json(storage.join(out, "HumanEval_0.json.gz"), problem)
"""

from __future__ import annotations

import gzip
import io
import json
import os

from multiplt.errors import MultipltError
from multiplt.storage import local, s3
from multiplt.storage.base import ConditionalWriteUnsupported, ObjectInfo, Store
from multiplt.storage.local import AtomicFile, cannot_write, file_above, lock_folder
from multiplt.storage.uri import NotFound, basename, join, local_path, parse

__all__ = [
    "AtomicFile", "ConditionalWriteUnsupported", "NotFound", "ObjectInfo", "basename", "cannot_write",
    "copy", "delete", "download_dir", "exists", "file_above", "join", "listing", "local_path",
    "lock_folder", "ls",
    "read_bytes", "read_json", "read_json_versioned", "read_jsonl", "read_parquet", "read_text",
    "read_versioned",
    "upload_dir", "write_bytes", "write_bytes_if", "write_json", "write_json_if", "write_jsonl",
    "write_parquet",
    "write_text",
]

#: the backend of each URI scheme (`uri.parse` knows no other schemes)
STORES: dict[str, Store] = {"file": local, "s3": s3}


def _backend(loc) -> Store:
    return STORES[loc.scheme]


# ---- bytes ---------------------------------------------------------------------------------------
def read_bytes(uri) -> bytes:
    """The raw bytes stored at `uri` (no decompression)."""
    loc = parse(uri)
    return _backend(loc).read_bytes(loc)


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


def write_json(uri, value, indent: int | None = None, if_changed: bool = False) -> None:
    write_text(uri, json.dumps(value, indent=indent) + "\n", if_changed=if_changed)


def read_json_versioned(uri):
    """read_json, and the version tag of the version read (read_versioned), for write_json_if."""
    data, etag = read_versioned(uri)
    return _json(uri, _text(uri, data)), etag


def write_json_if(uri, value, etag: str | None) -> bool:
    """write_json as a compare-and-swap (write_bytes_if): True when written."""
    return write_bytes_if(uri, _stored(uri, json.dumps(value) + "\n"), etag)


def read_jsonl(uri) -> list[dict]:
    """The JSON objects of a JSONL file, one per non-blank line; any other line is an error.
    Lines end at "\n" (a "\r" before it is dropped) and nowhere else: str.splitlines would also
    cut at U+2028, U+0085, form feeds and the like, which JSON allows raw inside strings."""
    rows = []
    for number, line in enumerate(read_text(uri).split("\n"), 1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MultipltError(f"{uri} line {number} is not valid JSON: {exc}") from None
        if not isinstance(row, dict):
            raise MultipltError(f"{uri} line {number} is not a JSON object (got {type(row).__name__})")
        rows.append(row)
    return rows


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


def parquet_rows(uri) -> int:
    """Rows of the parquet file at `uri`, from its footer (a local file is not read whole)."""
    import polars as pl

    path = local_path(uri)
    try:
        source = path if path is not None else io.BytesIO(read_bytes(uri))
        return pl.scan_parquet(source).select(pl.len()).collect().item()
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
