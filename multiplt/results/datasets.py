"""Find the datasets the chain made under a data root, for the Datasets page of the UI.

A dataset is a stage's output folder: it holds `funnel.json` and a folder of parquet files,

    functions/*.parquet            multiplt corpus     (DAG multiplt_corpus)
    tests/*.parquet                multiplt testgen    (DAG multiplt_testgen)
    data/<split>-*.parquet         multiplt translate  (DAG multiplt_translate), one dataset per split

beside `excluded/` (every dropped row with its `reason`) and the stage's resolved config
(`corpus_config.json`, `work/<shard>/config.json`, `config/<lang>-K-of-N.json`), which names
the model; without a config, the rows' `model` provenance column does. A shard's own
`funnel.json` in a work folder has no parquet folder beside it, so it is not a dataset.
`published.json` (written by `multiplt publish dataset`) names the Hub repo it went to.

One listing of the root finds every candidate (indexed once: a folder's files are a range of the
sorted listing); each dataset then reads its funnel, configs and the parquet footers of its files.
A dataset that cannot be read is listed with its `error`. A parquet file is never read whole: its
rows come from its footer, its `model` values (only when no config names the model) and excluded
reasons from those columns only; an S3 object is read in byte ranges (storage.open_ranged: the
footer is one request for most files).
What is read from an S3 object (its rows, `model` values and excluded reasons; a JSON file's
bytes) is kept in this process under the object's URI, ETag and size, so the next discover reads
only what changed (`CACHE_ENTRIES` / `CACHE_BYTES` bound it). Local files are read again each
time, in place.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import re
import threading

from multiplt.errors import MultipltError
from multiplt.results import funnel as funnel_mod

FUNNEL = "funnel.json"
PUBLISHED = "published.json"
#: data folder -> (kind, the DAG that writes it)
KINDS = {"functions": ("corpus", "multiplt_corpus"), "tests": ("tests", "multiplt_testgen"),
         "data": ("translation", "multiplt_translate")}
_SPLIT = re.compile(r"^(?P<split>[A-Za-z0-9_]+?)(-[^/]*)?\.parquet$")
#: bounds of the per-process cache of what was read from S3 objects: entries, and their bytes
CACHE_ENTRIES = 8192
CACHE_BYTES = 64 * 1024 * 1024


@dataclasses.dataclass
class Dataset:
    uri: str                    # the stage's output folder
    kind: str                   # corpus | tests | translation
    dag_id: str
    split: str | None = None    # translation: the language's split (racket, lua, ...)
    lang: str | None = None     # translation: the language code
    files: list[str] = dataclasses.field(default_factory=list)
    bytes: int = 0
    rows: int | None = None
    model: str | None = None
    revision: str | None = None
    config_uri: str | None = None
    steps: list[dict] = dataclasses.field(default_factory=list)
    published: dict | None = None
    error: str | None = None

    @property
    def key(self) -> str:
        """Names the dataset in a URL: its folder, and the split for a translation."""
        return f"{self.uri}#{self.split}" if self.split else self.uri

    @property
    def title(self) -> str:
        name = self.uri.rstrip("/").rsplit("/", 1)[-1]
        return f"{self.kind} {self.split}" if self.split else f"{self.kind} ({name})"


def _parent(uri: str) -> str:
    return uri.rsplit("/", 1)[0]


class _Listing:
    """The root's listing, indexed once: each file's ObjectInfo by URI, and the URIs sorted, so the
    files below a prefix are one range of them (found by bisection, not by scanning them all)."""

    def __init__(self, infos):
        self.infos = {info.uri: info for info in infos}
        self.uris = sorted(self.infos)

    def __contains__(self, uri: str) -> bool:
        return uri in self.infos

    def under(self, prefix: str) -> list[str]:
        """The URIs that start with `prefix`, sorted."""
        start = end = bisect.bisect_left(self.uris, prefix)
        while end < len(self.uris) and self.uris[end].startswith(prefix):
            end += 1
        return self.uris[start:end]


def discover(root: str) -> list[Dataset]:
    """Every dataset below the folder `root` (file:// or s3://), sorted by folder and split."""
    from multiplt import storage

    try:
        infos = storage.listing(root)
    except MultipltError:
        raise
    except Exception as exc:  # noqa: BLE001 - an unreachable bucket or a bad URI
        raise MultipltError(f"cannot list the data root {root}: {exc}") from None
    listing = _Listing(infos)
    folders = sorted(_parent(u) for u in listing.uris if u.rsplit("/", 1)[-1] == FUNNEL)
    found: list[Dataset] = []
    for folder in folders:
        for sub, (kind, dag_id) in KINDS.items():
            prefix = f"{folder}/{sub}/"
            files = [u for u in listing.under(prefix)
                     if "/" not in u[len(prefix):] and u.endswith(".parquet")]
            if not files:
                continue
            if kind == "translation":
                found.extend(_splits(folder, files, listing))
            else:
                found.append(Dataset(folder, kind, dag_id, files=files,
                                     bytes=sum(listing.infos[f].size for f in files)))
    reader = _Reader(listing)
    try:
        for dataset in found:
            try:
                _describe(dataset, listing, reader)
            except MultipltError as exc:
                dataset.error = str(exc)
    finally:
        reader.close()
    return found


def _splits(folder: str, files: list[str], listing: _Listing) -> list[Dataset]:
    by_split: dict[str, list[str]] = {}
    for uri in files:
        match = _SPLIT.match(uri.rsplit("/", 1)[-1])
        if match:
            by_split.setdefault(match["split"], []).append(uri)
    return [Dataset(folder, "translation", KINDS["data"][1], split=split, lang=_code(split),
                    files=split_files, bytes=sum(listing.infos[f].size for f in split_files))
            for split, split_files in sorted(by_split.items())]


def _code(split: str) -> str:
    from multiplt.languages import registry

    try:
        return registry.get(split).code
    except MultipltError:
        return split


def _describe(dataset: Dataset, listing: _Listing, reader: "_Reader") -> None:
    from multiplt import storage

    dataset.rows = sum(reader.rows(uri) for uri in dataset.files)
    raw = reader.json(storage.join(dataset.uri, FUNNEL))
    config_uri = _config_uri(dataset, listing)
    config = reader.json(config_uri) if config_uri else {}
    dataset.config_uri = config_uri
    if dataset.kind == "translation":
        if dataset.lang not in raw:
            raise MultipltError(f"{dataset.uri}/{FUNNEL} has no funnel for language {dataset.lang!r}")
        steps = funnel_mod.translation_steps(raw[dataset.lang])
        run = config.get("run") or {}
        dataset.model = run.get("model") or config.get("model_label") or config.get("model")
        dataset.revision = run.get("revision") or config.get("revision")
        excluded_prefix = f"{dataset.uri}/excluded/excluded-{dataset.split}-"
    else:
        steps = funnel_mod.steps_of(raw, f"{dataset.uri}/{FUNNEL}")
        dataset.model = config.get("model") or (f"{config['backend']} backend"
                                                if config.get("backend") == "replay" else None)
        dataset.revision = config.get("revision")
        excluded_prefix = f"{dataset.uri}/excluded/"
    excluded_dir = f"{dataset.uri}/excluded/"
    excluded = [u for u in listing.under(excluded_prefix) if u.endswith(".parquet")
                and "/" not in u[len(excluded_dir):]]
    reasons: collections.Counter = collections.Counter()
    for uri in excluded:  # sorted; every file is read (a bad one is the error) before any is counted
        reasons.update(reader.reasons(uri))
    dataset.steps = funnel_mod.attach_reasons(steps, reasons)
    if not dataset.model:  # no config found: the provenance columns of the rows, if any
        models = set().union(*(reader.models(uri) for uri in dataset.files))
        dataset.model = ", ".join(sorted(models)) or None
    published_uri = storage.join(dataset.uri, PUBLISHED)
    if published_uri in listing:
        dataset.published = reader.json(published_uri)


def _config_uri(dataset: Dataset, listing: _Listing) -> str | None:
    """The resolved config written beside the output (the first shard's, for sharded stages)."""
    from multiplt import storage

    base = dataset.uri
    if dataset.kind == "corpus":
        candidates = [f"{base}/corpus_config.json"]
    elif dataset.kind == "tests":
        shards = storage.join(base, "work") + "/"  # testgen's per-shard folders (testgen/pipeline.py)
        candidates = [u for u in listing.under(shards) if u.endswith("/config.json")
                      and u.count("/") == base.count("/") + 3]
    else:
        candidates = [u for u in listing.under(f"{base}/config/{dataset.lang}-") if u.endswith(".json")]
    return next((u for u in candidates if u in listing), None)


# ---- reading the objects -------------------------------------------------------------------------
class _VersionCache:
    """A bounded LRU map (oldest use evicted first) from (what, uri, etag, size) to what was read
    from that version of an object: at most CACHE_ENTRIES entries of at most CACHE_BYTES in all
    (each entry's `weight`, its approximate size). Thread-safe."""

    def __init__(self):
        self._items: collections.OrderedDict = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key, value, weight: int) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if weight > CACHE_BYTES:
                return
            self._items[key] = (value, weight)
            self._bytes += weight
            while len(self._items) > CACHE_ENTRIES or self._bytes > CACHE_BYTES:
                _key, (_value, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def weight(self) -> int:
        """The approximate bytes of what is kept (the sum of the entries' weights)."""
        return self._bytes


#: what was read from S3 objects, kept across discovers (see the module's docstring)
CACHE = _VersionCache()


#: S3 parquet objects a discover keeps open (their footers and what else was read of them), so the
#: rows and then the `model` values of a data file are read with one footer request
OPEN_FILES = 16


class _Unreadable(MultipltError):
    """The content of a file cannot be read as the page needs it (a bad parquet file, an excluded
    file without `reason`): kept in CACHE, unlike a failure to read the object at all."""


class _Reader:
    """Reads the objects of one discover, each at most once (a translate folder's funnel.json
    serves every split; an excluded file every dataset of its folder). A local file is read in
    place: parquet footers and the needed columns only. An S3 parquet object is read in byte
    ranges (its footer, and the columns needed only), a JSON object whole; what was read is kept
    in CACHE under the URI, ETag and size of the version read, so a later discover whose listing
    shows the same ETag and size reads nothing. A failed read is not kept; an unreadable file's
    error is (it is the content's)."""

    def __init__(self, listing: _Listing):
        self.listing = listing
        self.memo: dict = {}
        self.files: collections.OrderedDict = collections.OrderedDict()  # uri -> open RangedFile

    def close(self) -> None:
        while self.files:
            self.files.popitem()[1].close()

    def _once(self, what: str, uri: str, compute):
        key = (what, uri)
        if key not in self.memo:
            try:
                self.memo[key] = (True, compute())
            except MultipltError as exc:
                self.memo[key] = (False, exc)
        ok, value = self.memo[key]
        if not ok:
            raise value
        return value

    def _cached(self, what: str, uri: str):
        """CACHE's outcome for the listing's version of `uri`; None when not kept."""
        info = self.listing.infos.get(uri)
        return None if info is None else CACHE.get((what, uri, info.etag, info.size))

    def _keep(self, what: str, uri: str, etag: str, size: int, compute, weight):
        """compute()'s outcome, kept in CACHE under the version read (an _Unreadable error too)."""
        try:
            outcome = (True, compute())
        except _Unreadable as exc:
            outcome = (False, str(exc))
        ok, value = outcome
        CACHE.put((what, uri, etag, size), outcome, 256 + (weight(value) if ok else len(value)))
        return _outcome(outcome)

    def _parquet(self, what: str, uri: str, parse, weight):
        """parse(uri, file) of the S3 parquet object at `uri`, from CACHE when the listing's
        version of it is there; else read through the object opened in ranges (kept open for the
        other reads of this discover) and kept under the version read."""
        from multiplt import storage

        hit = self._cached(what, uri)
        if hit is not None:
            return _outcome(hit)
        f = self.files.pop(uri, None)
        if f is None:  # pyarrow reads each column chunk whole: no read-ahead beyond a footer's
            f = storage.open_ranged(uri, tail=storage.PARQUET_FOOTER_READ,
                                    block_size=storage.PARQUET_FOOTER_READ)
        self.files[uri] = f
        while len(self.files) > OPEN_FILES:
            self.files.popitem(last=False)[1].close()
        return self._keep(what, uri, f.etag, f.size, lambda: parse(uri, f), weight)

    def rows(self, uri: str) -> int:
        from multiplt import storage

        if storage.local_path(uri) is not None:
            return self._once("rows", uri, lambda: storage.parquet_rows(uri))
        return self._once("rows", uri, lambda: self._parquet("rows", uri, _footer_rows, lambda _rows: 0))

    def models(self, uri: str) -> frozenset:
        """The distinct non-empty `model` values of a data file (none when it has no such column)."""
        from multiplt import storage

        path = storage.local_path(uri)
        if path is not None:
            return self._once("models", uri, lambda: _column_values(uri, path, "model"))
        return self._once("models", uri,
                          lambda: self._parquet("models", uri, _ranged_models, _models_weight))

    def reasons(self, uri: str) -> collections.Counter:
        """{(stage, reason label): rows} of one excluded file (funnel.reason_counts)."""
        from multiplt import storage

        path = storage.local_path(uri)
        if path is not None:
            return self._once("reasons", uri, lambda: _reason_counts(uri, path))
        return self._once("reasons", uri,
                          lambda: self._parquet("reasons", uri, _reason_counts, _counter_weight))

    def json(self, uri: str):
        """The JSON value of a file, decoded anew for each caller (none shares a mutable value)."""
        from multiplt import storage

        if storage.local_path(uri) is not None:
            data = self._once("bytes", uri, lambda: storage.read_bytes(uri))
        else:
            data = self._once("bytes", uri, lambda: self._json_bytes(uri))
        return storage.decode_json(uri, data)

    def _json_bytes(self, uri: str) -> bytes:
        from multiplt import storage

        hit = self._cached("bytes", uri)
        if hit is not None:
            return _outcome(hit)
        data, etag = storage.read_versioned(uri)
        return self._keep("bytes", uri, etag, len(data), lambda: data, len)


def _outcome(outcome):
    ok, value = outcome
    if not ok:
        raise MultipltError(value)
    return value


def _models_weight(models: frozenset) -> int:
    return sum(len(v) for v in models)


def _counter_weight(counts: collections.Counter) -> int:
    return sum(64 + len(stage or "") + len(reason) for stage, reason in counts)


def _unreadable(uri: str, exc: Exception) -> MultipltError:
    return _Unreadable(f"{uri} is not a readable parquet file: {exc}")


def _parquet_file(uri: str, f):
    """pyarrow's ParquetFile over `f` (an S3 object opened in ranges): its footer only."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(f, pre_buffer=False)
    except MultipltError:  # reading the object failed (storage's error, naming it)
        raise
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise _unreadable(uri, exc) from None


def _footer_rows(uri: str, f) -> int:
    return _parquet_file(uri, f).metadata.num_rows


def _columns(uri: str, f, columns: list[str]):
    """The polars frame of `columns` of the parquet file `f` (only their column chunks read)."""
    import polars as pl

    try:
        return pl.from_arrow(_parquet_file(uri, f).read(columns=columns, use_threads=False))
    except MultipltError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _unreadable(uri, exc) from None


def _names(uri: str, source) -> list[str]:
    """The column names of a parquet file: a local path (polars) or an S3 object's file (pyarrow)."""
    import polars as pl

    if not isinstance(source, str):
        return list(_parquet_file(uri, source).schema_arrow.names)
    try:
        return list(pl.read_parquet_schema(source))
    except Exception as exc:  # noqa: BLE001 - polars raises several types for a bad file
        raise _unreadable(uri, exc) from None


def _ranged_models(uri: str, f) -> frozenset:
    """_column_values of `model` in an S3 object's file."""
    if "model" not in _names(uri, f):
        return frozenset()
    return frozenset(str(v) for v in _columns(uri, f, ["model"])["model"].unique() if v)


def _column_values(uri: str, path: str, column: str) -> frozenset:
    """The distinct non-empty values of `column` in one local parquet file; none when it has no
    such column. Only that column is read."""
    import polars as pl

    if column not in _names(uri, path):
        return frozenset()
    try:
        return frozenset(str(v) for v in pl.read_parquet(path, columns=[column])[column].unique() if v)
    except Exception as exc:  # noqa: BLE001 - polars raises several types for a bad file
        raise _unreadable(uri, exc) from None


def _reason_counts(uri: str, source) -> collections.Counter:
    """funnel.reason_counts of one excluded file (a local path or an S3 object's file)."""
    return funnel_mod.reason_counts([_reason_rows(uri, source)])


def _reason_rows(uri: str, source) -> list[tuple[str | None, str]]:
    """(stage, reason) of every excluded row of one file (stage is None when there is none), from
    its path or its S3 object's file; only those two columns are read."""
    import polars as pl

    names = _names(uri, source)
    wanted = [c for c in ("stage", "reason") if c in names]
    if "reason" not in names:
        if (_footer_rows(uri, source) if not isinstance(source, str)
                else _local_rows(uri, source)) == 0:
            return []  # an empty shard written without columns
        raise _Unreadable(f"{uri} has no `reason` column (columns: {', '.join(names)})")
    if isinstance(source, str):
        try:
            table = pl.read_parquet(source, columns=wanted)
        except Exception as exc:  # noqa: BLE001
            raise _unreadable(uri, exc) from None
    else:
        table = _columns(uri, source, wanted)
    reasons = table["reason"].to_list()
    stages = table["stage"].to_list() if "stage" in names else [None] * len(reasons)
    return list(zip(stages, reasons))


def _local_rows(uri: str, path: str) -> int:
    import polars as pl

    try:
        return pl.scan_parquet(path).select(pl.len()).collect().item()
    except Exception as exc:  # noqa: BLE001
        raise _unreadable(uri, exc) from None
