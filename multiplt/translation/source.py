"""The step-1 tests dataset (`multiplt testgen`'s `URI/tests/`): reading, checking, sharding."""

from __future__ import annotations

import hashlib

from multiplt import storage
from multiplt.errors import MultipltError

REQUIRED = ("content", "content_with_types", "sha1", "id", "entrypoint", "tests")


def tests_files(uri: str) -> list[str]:
    """The parquet files of a tests dataset: a file, a folder of them, or a root with `tests/`."""
    if uri.endswith(".parquet"):
        if not storage.exists(uri):
            raise MultipltError(f"tests dataset {uri} does not exist")
        return [uri]
    if not storage.exists(uri):
        raise MultipltError(f"tests dataset {uri} does not exist")
    inner = storage.join(uri, "tests")
    folder = inner if storage.exists(inner) else uri
    files = sorted(u for u in storage.ls(folder, recursive=True) if u.endswith(".parquet"))
    if not files:
        raise MultipltError(f"tests dataset {uri}: no .parquet files in {folder}")
    return files


def load_rows(uri: str) -> tuple[list[dict], str]:
    """Every row (sorted by sha1, one per sha1) and a fingerprint of the input files. Files
    without rows are skipped; a dataset without any row is an error."""
    digest = hashlib.sha256()
    rows: dict[str, dict] = {}
    for f in tests_files(uri):
        digest.update(storage.read_bytes(f))
        df = storage.read_parquet(f)
        if df.height == 0:  # an empty shard of testgen's output may have no columns at all
            continue
        missing = [c for c in REQUIRED if c not in df.columns]
        if missing:
            raise MultipltError(f"tests dataset {f} lacks the column(s) {', '.join(missing)} "
                                f"(MultiPL-T's step-1 columns: {', '.join(REQUIRED)})")
        for n, row in enumerate(df.select(list(REQUIRED)).to_dicts()):
            bad = [k for k in ("content", "sha1", "entrypoint") if not isinstance(row[k], str) or not row[k]]
            if bad or not isinstance(row["tests"], list):
                what = ", ".join(bad) or "tests (not a list)"
                raise MultipltError(f"tests dataset {f} row {n}: malformed record ({what})")
            rows.setdefault(row["sha1"], row)
    if not rows:
        raise MultipltError(f"tests dataset {uri} has no rows")
    return [rows[k] for k in sorted(rows)], digest.hexdigest()
