"""Where documents come from. A source lists its input units (files, sorted: the unit of
sharding) and reads one unit into documents (a `.py` file, or one row of a table).

    folder of .py     PATH or URI of a folder; recursive; symlinks are not followed
    tables            a .parquet / .jsonl(.gz) file, or a folder of them, with a `content`
                      column (The Stack's layout); every other column is kept as provenance;
                      rows are read a batch at a time (read_table), never the whole file
    hf://datasets/OWNER/NAME[/DIR]   a Hub dataset's parquet/JSONL files (huggingface_hub)
    stdlib            the running interpreter's standard library (the offline demo corpus)
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import os
import platform
import re
import sysconfig
import zlib
from typing import Callable, Iterator

from multiplt.errors import MultipltError

TABLE_SUFFIXES = (".parquet", ".jsonl", ".jsonl.gz")
SKIP_DIRS = {"__pycache__", "site-packages", "dist-packages", ".git"}


@dataclasses.dataclass
class Document:
    origin: str  # stable: the unit (relative path) and, for tables, `#row`
    data: bytes | str | None  # bytes of a file, text of a table row (None: not a string)
    provenance: dict


class FolderSource:
    """`.py` files below a folder (local: os.walk without following symlinks; else storage.ls)."""

    kind = "folder"
    revision: str | None = None

    def __init__(self, root: str, label: str, prefix: str = ""):
        self.root, self.label, self.prefix = root.rstrip("/"), label, prefix

    def units(self) -> list[str]:
        if "://" in self.root and not self.root.startswith("file://"):
            from multiplt import storage

            base = self.root + "/"
            return sorted(u[len(base):] for u in storage.ls(self.root, recursive=True) if u.endswith(".py"))
        root = _local(self.root)
        found = []
        for dirpath, dirs, files in os.walk(root, followlinks=False):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS
                             and not os.path.islink(os.path.join(dirpath, d)))
            for name in files:
                path = os.path.join(dirpath, name)
                if name.endswith(".py") and not os.path.islink(path):
                    found.append(os.path.relpath(path, root).replace(os.sep, "/"))
        return sorted(found)

    def read(self, unit: str) -> Iterator[Document]:
        if "://" in self.root and not self.root.startswith("file://"):
            from multiplt import storage

            data = storage.read_bytes(f"{self.root}/{unit}")
        else:
            with open(os.path.join(_local(self.root), unit), "rb") as f:
                data = f.read()
        path = writable(unit)
        yield Document(self.prefix + path, data, {"path": path})


class TableSource:
    """Rows of parquet / JSONL files with a `content` column."""

    kind = "table"
    revision: str | None = None  # a Hub source's commit

    def __init__(self, files: dict[str, str], label: str, opener=None):
        self.files, self.label = files, label  # unit -> URI (or Hub filename)
        self.opener = opener or (lambda uri: uri)

    def units(self) -> list[str]:
        return sorted(self.files)

    def read(self, unit: str) -> Iterator[Document]:
        """The unit's rows one at a time, as read_table streams them (closing this generator
        stops the reading and closes the file or object being read at once)."""
        uri = self.opener(self.files[unit])
        path = writable(unit)
        with contextlib.closing(read_table(uri)) as rows:
            for row_number, row in enumerate(rows):
                content = row.pop("content")
                provenance = {"path": path, "row": str(row_number)}
                for key, value in row.items():
                    name = writable(f"source_{key}" if key in RESERVED or key.startswith("_") else key)
                    provenance[name] = None if value is None else writable(str(value))
                yield Document(f"{path}#{row_number}", content if isinstance(content, str) else None,
                               provenance)


# column names a provenance column may not take (it gets a `source_` prefix instead): those of
# our rows (the dedup signatures too, which kept rows carry until the merge) and `tests`, which
# testgen reads as a function's known tests (a list of str, not a stringified provenance value);
# a name starting with `_` is prefixed as well (our rows' internal keys start with `_`)
RESERVED = {"content", "id", "sha1", "entrypoint", "context", "reason", "detail", "path", "row",
            "line", "source", "exact_key", "minhash", "bands", "tests"}


def writable(text: str) -> str:
    """`text` with what UTF-8 cannot hold (a lone surrogate: a JSON `"\\ud83d"`, a file name's
    undecodable byte) written as its backslash escape, so ids and provenance columns can be
    written; any other text is returned as it is."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


#: rows of a parquet file read at a time (a slice: polars skips the pages before it): a shard
#: holds one batch of a table's rows, never the whole file, and stops reading at its --limit
TABLE_BATCH_ROWS = 1000
#: a parquet file in object storage is read in byte ranges (storage.open_ranged), never copied:
#: pyarrow reads each column's pages at most TABLE_READ_BUFFER bytes at a time (a larger page
#: whole) as the batches need them, and each request reads TABLE_BLOCK bytes ahead, of which
#: TABLE_CACHE are kept (the columns of a row group are read side by side)
TABLE_READ_BUFFER = 1 << 20
TABLE_BLOCK = 4 << 20
TABLE_CACHE = 16 << 20


def read_table(uri: str) -> Iterator[dict]:
    """The rows of the table file at `uri`, in order, read as they are consumed (a parquet file
    TABLE_BATCH_ROWS rows at a time, a JSONL file line by line): a reader that stops early
    (--limit) reads no further. A file in object storage is read in place, never copied: a
    parquet file in byte ranges (its footer, then its pages as the batches need them), a JSONL
    file as one streamed body. MultipltError names the file (and line) of a table that cannot
    be read: missing, unreadable parquet, a parquet without `content`, a JSONL line that is not
    a JSON object with `content`, text that is not UTF-8, gzip that is not valid; rows before it
    have been yielded."""
    from multiplt import storage

    path = storage.local_path(uri)
    if path is not None and not os.path.isfile(path):
        raise storage.NotFound(f"no such file: {uri}")
    if not uri.endswith(".parquet"):
        with storage.open_stream(uri) as stream:
            yield from _jsonl_rows(uri, stream)
    elif path is not None:
        yield from _parquet_rows(uri, path)
    else:
        with storage.open_ranged(uri, tail=storage.PARQUET_FOOTER_READ, block_size=TABLE_BLOCK,
                                 cache_bytes=TABLE_CACHE) as f:
            yield from _ranged_parquet_rows(uri, f)


def _parquet_rows(uri: str, path: str) -> Iterator[dict]:
    """Slices of TABLE_BATCH_ROWS rows (polars pushes a slice down into the reader: the pages
    before it are skipped, not decoded), each as dicts (as polars' `to_dicts` gives them)."""
    import polars as pl

    def scan():
        return pl.scan_parquet(path, glob=False)

    try:
        names = list(scan().collect_schema())
        total = scan().select(pl.len()).collect().item()
    except Exception as exc:  # noqa: BLE001 - polars raises several types for a bad file
        raise MultipltError(f"{uri} is not a readable parquet file: {exc}") from None
    if "content" not in names:
        raise MultipltError(f"{uri} has no `content` column (columns: {', '.join(names)})")
    for start in range(0, total, TABLE_BATCH_ROWS):
        try:
            batch = scan().slice(start, TABLE_BATCH_ROWS).collect()
        except Exception as exc:  # noqa: BLE001
            raise MultipltError(f"{uri} is not a readable parquet file: {exc}") from None
        yield from batch.to_dicts()


def _ranged_parquet_rows(uri: str, f) -> Iterator[dict]:
    """The rows of the parquet file `f` (opened in ranges) as _parquet_rows gives them: batches of
    TABLE_BATCH_ROWS rows from pyarrow, each made a polars frame and then dicts (the values and
    types polars reads); only the pages of the rows read are fetched."""
    import polars as pl

    from multiplt import storage

    table = storage.parquet_file(uri, f, buffer_size=TABLE_READ_BUFFER)
    names = table.schema_arrow.names
    if "content" not in names:
        raise MultipltError(f"{uri} has no `content` column (columns: {', '.join(names)})")
    batches = table.iter_batches(batch_size=TABLE_BATCH_ROWS, use_threads=False)
    while True:
        try:
            batch = next(batches, None)
            rows = None if batch is None else pl.from_arrow(batch).to_dicts()
        except MultipltError:  # reading the object failed (storage's error, naming it)
            raise
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
            raise MultipltError(f"{uri} is not a readable parquet file: {exc}") from None
        if rows is None:
            return
        yield from rows


def _jsonl_rows(uri: str, stream) -> Iterator[dict]:
    """The JSON object of each non-blank line, read line by line (gunzipped for `.gz`). Lines
    end at "\n" (a "\r" before it is dropped) and nowhere else, as storage.jsonl_lines splits
    them (JSON allows U+2028, form feeds and the like raw inside strings)."""
    from multiplt import storage

    for number, raw in _raw_lines(uri, stream):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MultipltError(f"{uri} line {number} is not UTF-8 text: {exc}") from None
        line = line.removesuffix("\n").removesuffix("\r")
        if not line.strip():
            continue
        row = storage.jsonl_object(uri, number, line)
        if "content" not in row:
            raise MultipltError(f"{uri} line {number} has no `content` field")
        yield row


def _raw_lines(uri: str, stream) -> Iterator[tuple[int, bytes]]:
    """(line number from 1, the line's bytes with its "\n") of the binary `stream` of `uri`."""
    if not uri.endswith(".gz"):
        yield from enumerate(stream, 1)
        return
    with gzip.GzipFile(fileobj=stream, mode="rb") as f:
        lines, number = iter(f), 0
        while True:
            try:
                raw = next(lines, None)
            except (OSError, EOFError, zlib.error) as exc:
                raise MultipltError(f"{uri} is not valid gzip: {exc}") from None
            if raw is None:
                return
            number += 1
            yield number, raw


def _local(root: str) -> str:
    """The path of a local source (a bare path or a file:// URI, parsed as storage parses it:
    a malformed file:// URI is the same clear error as elsewhere)."""
    from multiplt import storage

    return storage.local_path(root) if root.startswith("file://") else root


def _tables_below(root: str) -> dict[str, str]:
    from multiplt import storage

    base = root.rstrip("/") + "/"
    return {u[len(base):]: u for u in storage.ls(root, recursive=True) if u.endswith(TABLE_SUFFIXES)}


def _stdlib() -> FolderSource:
    """The running interpreter's standard library (the offline demo corpus)."""
    stdlib = FolderSource(sysconfig.get_paths()["stdlib"], "stdlib", prefix="stdlib:")
    stdlib.revision = f"python {platform.python_version()}"
    return stdlib


#: the sources named by a keyword, not a path or URI: keyword -> what builds the source. A
#: keyword is never a path: the DAG's checks do not refuse it as a relative path
#: (dags/multiplt_pipelines/checks.py) and the main job does not make it absolute
#: (plugins/multiplt_airflow/job_models.py); both read this (docs/corpus.md "Adding a corpus
#: source"). A local folder of the same name is given as `./NAME`.
NAMED_SOURCES: dict[str, Callable[[], FolderSource | TableSource]] = {"stdlib": _stdlib}


def resolve(spec: str, revision: str | None = None) -> FolderSource | TableSource:
    """The source named by `spec`; MultipltError for a missing path, unknown scheme or no input.
    `revision`: the one a build recorded when it began (pin.py); a source that can be opened at
    a revision (the Hub's) is opened there, the others ignore it (the build compares theirs)."""
    if spec in NAMED_SOURCES:
        return NAMED_SOURCES[spec]()
    if spec.startswith("hf://"):
        from multiplt.corpus.hub_source import hub_source

        return hub_source(spec, revision)
    from multiplt.storage.uri import local_name_hint, mistyped

    meant = mistyped(spec)
    if meant is not None:  # `s3:/b/x` would be a missing local folder
        if re.match(r"hf(:|//)", spec, re.I):  # a Hub source: hf://datasets/OWNER/NAME, not OWNER/NAME
            meant = "hf://" + (meant if meant.startswith("datasets/") else "datasets/" + meant)
        raise MultipltError(f"--source {spec!r} reads as a mistyped URI (did you mean {meant!r}?); "
                            f"{local_name_hint(spec, 'folder or file')}")
    scheme = spec.split("://", 1)[0] if "://" in spec else "file"
    if scheme not in ("file", "s3"):
        raise MultipltError(f"--source {spec!r}: unknown scheme {scheme}:// (use a path, file://, "
                            f"s3://, hf://datasets/OWNER/NAME, or {' or '.join(NAMED_SOURCES)})")
    from multiplt import storage

    if scheme == "file" and not os.path.exists(_local(spec)):
        raise MultipltError(f"--source {spec!r} does not exist")
    if spec.endswith(TABLE_SUFFIXES) and (scheme != "file" or os.path.isfile(_local(spec))):
        if not storage.exists(spec):
            raise MultipltError(f"--source {spec!r} does not exist")
        return TableSource({storage.basename(spec): spec}, spec)
    if scheme == "file" and os.path.isfile(_local(spec)):
        raise MultipltError(f"--source {spec!r} is a file but not .parquet, .jsonl or .jsonl.gz")
    py = FolderSource(spec, spec)
    if py.units():
        return py
    tables = _tables_below(spec)
    if not tables:
        raise MultipltError(f"--source {spec!r} is an empty corpus: no .py, .parquet or .jsonl files")
    return TableSource(tables, spec)
