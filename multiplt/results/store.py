"""Read and update the results store: one parquet table, rewritten atomically on every record.

Several evaluation runs may record at the same time (the fine-tuning DAG evaluates every epoch
in parallel), so an update is a read-merge-write that no other writer can come between: under
an flock on a sidecar file for local stores; for S3 stores, optimistically: the table is read
with its ETag and written back with a conditional PUT (If-Match that ETag, If-None-Match: * for
a new store), and when another writer replaced the table first (412) it is read, merged and
written again, a bounded number of times with a jittered backoff (then a PlatformError, exit 3:
retry later; nothing recorded). An S3-compatible server that refuses conditional writes (501)
gets the old scheme, with a warning: write, read back, merge again if the rows are gone, which
cannot see a later writer who read the table earlier overwrite them.

Every read checks the table: a parquet file without the key columns, or with rows that have no
value in a REQUIRED column (model, lang, epoch, estimate, run_id, k), is refused with one
MultipltError naming the columns and how many rows, so no reader (the leaderboard, `results
record`, `publish results`) shows, merges over or publishes them.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import logging
import os

from multiplt.errors import MultipltError, PlatformError
from multiplt.log import Funnel
from multiplt.results.run_record import load_run_rows
from multiplt.results.schema import COLUMNS, KEY, polars_schema

LOG = logging.getLogger("multiplt.results")
# Conditional writes to an S3 store: attempts before giving up, and the backoff between them
# (a random wait up to BACKOFF_S doubled per attempt, at most BACKOFF_MAX_S).
CONDITIONAL_ATTEMPTS = 16
BACKOFF_S = 0.05
BACKOFF_MAX_S = 2.0
# Write-then-check attempts for a server without conditional writes.
OPTIMISTIC_RETRIES = 5
# Columns every row of a store has had a value in since the first schema (results record
# always wrote them): the key, and what the leaderboard places and ranks a row by. Columns added
# later (base_model, selection, tokenizer_*, ...) are null in older rows, legitimately.
REQUIRED = (*KEY, "model", "lang", "epoch", "estimate")


def _empty():
    import polars as pl

    return pl.DataFrame(schema=polars_schema())


def _conform(df):
    """The table with exactly the store's columns, in order and typed (extra columns kept last)."""
    import polars as pl

    schema = polars_schema()
    for name, dtype in schema.items():
        df = df.with_columns(pl.col(name).cast(dtype) if name in df.columns else pl.lit(None, dtype).alias(name))
    extra = [c for c in df.columns if c not in schema]
    return df.select([*schema, *extra])


def _check_required(store_uri: str, table) -> None:
    """A MultipltError naming each REQUIRED column with nulls and how many rows have one: rows
    that say no model, language, epoch or score cannot be shown, ranked or merged with."""
    counts = table.select(list(REQUIRED)).null_count().row(0, named=True)
    bad = [f"{n} row{'' if n == 1 else 's'} with no {name}" for name, n in counts.items() if n]
    if bad:
        raise MultipltError(f"{store_uri} is not a well-formed results store: {', '.join(bad)} "
                            f"(every row needs {', '.join(REQUIRED)})")


def _table(store_uri: str, data: bytes):
    """The store's table from its bytes, conformed to the schema; an error when it is not one."""
    import polars as pl

    try:
        table = pl.read_parquet(io.BytesIO(data))
    except Exception as exc:  # polars raises several types for a bad file
        raise MultipltError(f"{store_uri} is not a readable parquet file: {exc}") from None
    try:
        # Some other parquet file would otherwise conform to a table of nulls: shown as empty,
        # published as nulls, or merged over by record.
        missing = [name for name in KEY if name not in table.columns]
        if missing:
            raise MultipltError(f"{store_uri} is not a results store: it has no "
                                f"{', '.join(missing)} column{'s' if len(missing) > 1 else ''}")
        table = _conform(table)
        _check_required(store_uri, table)
        return table
    except MultipltError:
        raise
    except Exception as exc:  # a corrupt or foreign file must not be silently replaced
        raise MultipltError(f"{store_uri} is not a readable results store: {exc}") from None


def read_store(store_uri: str):
    """The whole table as a polars DataFrame; an empty, typed one when the store does not exist yet."""
    from multiplt import storage

    if not storage.exists(store_uri):
        return _empty()
    return _table(store_uri, storage.read_bytes(store_uri))


def _read_versioned(store_uri: str):
    """The table and the ETag of the version read (None, with an empty table: no store yet)."""
    from multiplt import storage

    try:
        data, etag = storage.read_versioned(store_uri)
    except storage.NotFound:
        return _empty(), None
    return _table(store_uri, data), etag


@contextlib.contextmanager
def _local_lock(store_uri: str):
    from multiplt import storage

    path = storage.local_path(store_uri)
    if path is None:
        yield False
        return
    import fcntl

    blocker = storage.file_above(path)
    if blocker is not None:
        raise MultipltError(f"results store {store_uri}: {blocker} is a file, not a folder")
    if os.path.isdir(path):
        raise MultipltError(f"results store {store_uri} is a folder; give a .parquet file")
    from multiplt.storage import cannot_write

    # `<store>.lock` stays after the command, failed or not: removing it would break the lock.
    # Another writer may have opened it and wait in flock; once it is unlinked, that writer
    # gets the old (nameless) file's lock while a third one creates a new `.lock` and locks
    # that, and both then read-merge-write the store at once, losing one's rows.
    try:  # a read-only or full location: one error naming the store, as its writes give
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        handle = open(f"{path}.lock", "a")
    except OSError as exc:
        raise cannot_write(store_uri, exc) from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _merge(current, new_rows: list[dict], now: str):
    """Replace rows with the same key, keeping their first created_at; add the others."""
    import polars as pl

    new = _conform(pl.DataFrame(new_rows, schema_overrides=polars_schema(), infer_schema_length=None))
    first_seen = current.select([*KEY, "created_at"]).rename({"created_at": "_first"})
    new = (new.join(first_seen, on=list(KEY), how="left")
              .with_columns(pl.coalesce("_first", pl.lit(now)).alias("created_at")).drop("_first"))
    kept = current.join(new.select(list(KEY)), on=list(KEY), how="anti")
    merged = pl.concat([kept, new.select(kept.columns)], how="vertical")
    return merged.sort(["model", "lang", "epoch", "run_id", "k"], nulls_last=True)


def _contains(table, new_rows: list[dict]) -> bool:
    keys = {tuple(r[k] for k in KEY) for r in new_rows}
    present = set(table.select(list(KEY)).iter_rows())
    return keys <= present


def _parquet(table) -> bytes:
    buffer = io.BytesIO()
    table.write_parquet(buffer)
    return buffer.getvalue()


def _record_conditionally(store_uri: str, new_rows: list[dict], now: str):
    """Read-merge-write of an object store with conditional writes (storage.update): the write
    succeeds only if the table is still the version read, else read, merge and write again.
    (The table read, the table written)."""
    from multiplt import storage

    last: dict = {}  # the last merge's tables: those of the version written

    def merge(data: bytes | None) -> bytes:
        last["current"] = _empty() if data is None else _table(store_uri, data)
        last["merged"] = _merge(last["current"], new_rows, now)
        return _parquet(last["merged"])

    def rows_stayed() -> bool:
        # A server that ignores the conditions is caught here at least when the table lost the
        # rows before this read (as _record_unconditionally checks); with conditional writes no
        # later writer can drop them, so this never fails.
        if _contains(_read_versioned(store_uri)[0], new_rows):
            return True
        LOG.warning("%s lost the rows just written (the server may ignore conditional "
                    "writes); merging again", store_uri)
        return False

    try:
        storage.update(store_uri, merge, confirm=rows_stayed, attempts=CONDITIONAL_ATTEMPTS,
                       backoff_s=BACKOFF_S, backoff_max_s=BACKOFF_MAX_S, log=LOG,
                       gave_up=f"results store {store_uri}: other writers replaced the table on each "
                               f"of {CONDITIONAL_ATTEMPTS} attempts to record; nothing recorded, retry later")
    except storage.ConditionalWriteUnsupported as exc:
        LOG.warning("%s; recording without them: runs recorded into %s at the same time may "
                    "lose rows (record them one at a time)", exc, store_uri)
        return _record_unconditionally(store_uri, new_rows, now)
    return last["current"], last["merged"]


def _record_unconditionally(store_uri: str, new_rows: list[dict], now: str):
    """Write, read back, merge again if a concurrent writer replaced the table in between (for a
    server without conditional writes: a writer who read the table earlier and writes later
    still drops these rows unseen)."""
    from multiplt import storage

    for attempt in range(OPTIMISTIC_RETRIES):
        current = read_store(store_uri)
        merged = _merge(current, new_rows, now)
        storage.write_parquet(store_uri, merged)
        if _contains(read_store(store_uri), new_rows):
            return current, merged
        LOG.warning("%s changed while recording (attempt %d); merging again", store_uri, attempt + 1)
    raise PlatformError(f"results store {store_uri}: concurrent writers kept replacing the table; retry later")


def folder_identity(uri: str) -> str:
    """What tells two spellings of one run folder apart from two folders: a local folder's
    realpath (`runs/x`, `./runs/x/` and its absolute path are one folder), a remote URI as
    written (without a trailing `/`)."""
    from multiplt import storage

    local = storage.local_path(uri)
    return os.path.realpath(local) if local is not None else uri.rstrip("/")


def _unique_rows(run_uris: list[str], experiment: str | None, epoch: int | None, funnel: Funnel,
                 allow_partial: bool = False) -> list[dict]:
    """The rows of every run folder, one per key: a run given twice (the same folder, however
    spelled, or another folder of the same run) is recorded once, from the run folder given last,
    as recording them one after the other would leave it."""
    by_key: dict[tuple, dict] = {}
    given_by: dict[tuple, set[str]] = {}  # the folders (identities) that gave each key
    given_as: dict[str, list[str]] = {}  # per folder, how it was given each time, in order
    rows_of: dict[str, int] = {}
    again: dict[str, int] = {}  # per folder, rows dropped because the folder was given again
    dropped: dict[tuple[str, str], int] = {}
    for uri in run_uris:
        rows = load_run_rows(uri, experiment=experiment, epoch=epoch, allow_partial=allow_partial)
        first = rows[0]
        given = uri.rstrip("/") or uri  # messages name the folder as given; rows, as stored
        LOG.info("%s: %d pass@k row%s (k=%s) of %s, lang %s, epoch %d", given, len(rows),
                 "" if len(rows) == 1 else "s", ", ".join(str(r["k"]) for r in rows), first["model"],
                 first["lang"], first["epoch"])
        folder = folder_identity(uri)
        given_as.setdefault(folder, []).append(given)
        rows_of[folder] = len(rows)
        for row in rows:
            key = tuple(row[k] for k in KEY)
            if key in by_key:
                if folder in given_by[key]:
                    again[folder] = again.get(folder, 0) + 1
                else:
                    pair = (by_key[key]["run_uri"], row["run_uri"])
                    dropped[pair] = dropped.get(pair, 0) + 1
            given_by.setdefault(key, set()).add(folder)
            by_key[key] = row
    for folder, n in again.items():
        times, names = len(given_as[folder]), list(dict.fromkeys(given_as[folder]))
        count = "twice" if times == 2 else f"{times} times"
        also = f" (as {', '.join(names)})" if len(names) > 1 else ""
        rows = rows_of[folder]
        LOG.warning("%s: given %s%s; its %d row%s recorded once", given_as[folder][-1], count, also, rows,
                    "" if rows == 1 else "s")
        funnel.drop("run folder given again", n)
    for (earlier, later), n in dropped.items():
        LOG.warning("%s is the same run as %s (same run_id): recording %d row%s from the latter",
                    earlier, later, n, "" if n == 1 else "s")
        funnel.drop("same run as a later run folder", n)
    funnel.keep(len(by_key))
    return list(by_key.values())


def record_runs(run_uris: list[str], store_uri: str, experiment: str | None = None,
                epoch: int | None = None, allow_partial: bool = False) -> dict:
    """Append the scored runs to the store; recording a run again replaces its rows. Every
    folder is read and checked before the store is written: a run not wholly scored is an error
    unless `allow_partial` (run_record.load_run_rows). Safe while other runs record into the
    same store (local: flock; S3: conditional writes, merged again when another writer got
    there first); a PlatformError when an S3 store kept changing on every attempt."""
    from multiplt import storage

    if not run_uris:
        raise MultipltError("no run folders given")
    funnel = Funnel("results record")  # pass@k rows read -> recorded, a run given twice once
    new_rows = _unique_rows(run_uris, experiment, epoch, funnel, allow_partial)
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    with _local_lock(store_uri) as locked:
        if locked:
            current = read_store(store_uri)
            merged = _merge(current, new_rows, now)
            storage.write_parquet(store_uri, merged)
        else:
            current, merged = _record_conditionally(store_uri, new_rows, now)
    existing = set(current.select(list(KEY)).iter_rows())
    replaced = sum(1 for r in new_rows if tuple(r[k] for k in KEY) in existing)
    funnel.log(LOG)
    skipped = sum(funnel.dropped.values())
    LOG.info("%s: %d run folder%s, %d pass@k rows read -> %d recorded: %d added, %d replaced "
             "(recorded before), %d skipped; the store holds %d rows", store_uri, len(run_uris),
             "" if len(run_uris) == 1 else "s", funnel.seen, len(new_rows), len(new_rows) - replaced,
             replaced, skipped, merged.height)
    return {"added": len(new_rows) - replaced, "replaced": replaced, "rows": merged.height,
            "read": funnel.seen, "skipped": skipped, "columns": list(COLUMNS)}
