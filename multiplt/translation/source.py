"""The step-1 tests dataset (`multiplt testgen`'s `URI/tests/`): reading, checking, sharding."""

from __future__ import annotations

import hashlib

from multiplt import storage
from multiplt.errors import MultipltError
from multiplt.generation.folder import unsafe_name
from multiplt.testgen.inputs import all_malformed, malformed

REQUIRED = ("content", "content_with_types", "sha1", "id", "entrypoint", "tests")


def _corpus_output(root: str) -> bool:
    """Whether `root` is a corpus build's output: its `corpus_config.json` or `_work/` folder."""
    from multiplt.testgen.inputs import WORK

    return storage.exists(storage.join(root, "corpus_config.json")) or \
        storage.exists(storage.join(root, WORK))


def tests_files(uri: str) -> list[str]:
    """The parquet files of a tests dataset: a file, a folder of them, or a root with `tests/`.
    A folder's files below a `_work/` or `excluded/` folder (a corpus build's or testgen's work
    and dropped rows) are not read; a corpus build's output (or its `functions/` folder), which
    has functions but no tests yet, is refused naming the testgen run it needs, and so is a
    folder of testgen's shard files `shard-K-of-N.parquet` of which some K has none yet."""
    from multiplt.testgen.inputs import EXCLUDED, WORK

    if uri.endswith(".parquet"):
        if not storage.exists(uri):
            raise MultipltError(f"tests dataset {uri} does not exist")
        return [uri]
    if not storage.exists(uri):
        raise MultipltError(f"tests dataset {uri} does not exist")
    inner = storage.join(uri, "tests")
    folder = inner if storage.exists(inner) else uri
    if folder == uri:
        path = uri.rstrip("/")
        head, _, last = path.rpartition("/")
        parent = (head or ".") if last == "functions" and not head.endswith(":/") else None
        root = path if _corpus_output(path) else parent if parent and _corpus_output(parent) else None
        if root is not None:
            raise MultipltError(f"tests dataset {uri} is a corpus build's output (functions without "
                                f"tests): run `multiplt testgen --functions {root}` first and pass "
                                f"its output to --tests")
    prefix = folder.rstrip("/") + "/"
    files = sorted(u for u in storage.ls(folder, recursive=True) if u.endswith(".parquet")
                   and not {WORK, EXCLUDED} & set(u[len(prefix):].split("/")[:-1]))
    if not files:
        raise MultipltError(f"tests dataset {uri}: no .parquet files in {folder}")
    _refuse_unfinished(uri, folder, [u[len(prefix):] for u in files])
    return files


def _refuse_unfinished(uri: str, folder: str, names: list[str]) -> None:
    """MultipltError when `names` (the files below `folder`) are shards `-K-of-N` of which some K
    has no file: testgen writes tests/shard-K-of-N.parquet once shard K is done, so until every
    shard is, the tests would be part of the run's (as `publish dataset` counts data/ files)."""
    from multiplt.translation.writer import missing_flags, shard_gaps

    gaps = shard_gaps(names)
    if not gaps:
        return
    gap, path = gaps[0], folder.rstrip("/")
    inner = path != uri.rstrip("/")  # the tests/ folder of the given testgen output
    shown = [f"tests/{name}" for name in gap.missing] if inner else gap.missing
    root, _, last = path.rpartition("/")
    out = f" --out {root}" if last == "tests" and root else ""
    raise MultipltError(f"tests dataset {uri}{': tests/' if inner else ''} holds {gap.held} of the "
                        f"{gap.n} shards of a testgen run (no {', '.join(shown[:3])}"
                        f"{' ...' if len(shown) > 3 else ''}), which has not finished: run shard(s) "
                        f"{missing_flags(gap)} first (`multiplt testgen{out} --shard K/N` with the "
                        f"run's other flags)")


def load_rows(uri: str, shard: tuple[int, int] | None = None) -> tuple[list[dict], int, str, list[dict]]:
    """The rows of one shard (the K-th of N round-robin shards of the sorted sha1s; one row per
    sha1, the first in file and row order), the number of functions in the whole dataset, a
    fingerprint of its files, and the shard's other rows of an already seen sha1 (`sha1`, `id`,
    `entrypoint`; translate drops them as `duplicate_sha1`, as testgen does). Only the shard's
    rows become Python objects. Files without rows are skipped; a dataset without any row is an
    error, and so is a `tests` list holding a null (in any row, as testgen refuses it)."""
    import polars as pl

    from multiplt.execution.files import select_shard

    digest = hashlib.sha256()
    frames = []
    for f in tests_files(uri):
        digest.update(storage.read_bytes(f))
        df = storage.read_parquet(f)
        if df.height == 0:  # an empty shard of testgen's output may have no columns at all
            continue
        missing = [c for c in REQUIRED if c not in df.columns]
        if missing:
            raise MultipltError(f"tests dataset {f} lacks the column(s) {', '.join(missing)} "
                                f"(MultiPL-T's step-1 columns: {', '.join(REQUIRED)})")
        df = df.select(list(REQUIRED)).with_row_index("_row")
        bad = df.filter(pl.col("sha1").is_null() | (pl.col("sha1").cast(pl.String) == ""))
        if bad.height:
            raise MultipltError(f"tests dataset {f} row {bad['_row'][0]}: malformed record (sha1)")
        if isinstance(df.schema["tests"], pl.List):
            bad = df.filter(pl.col("tests").list.eval(pl.element().is_null()).list.any())
            if bad.height:
                raise MultipltError(f"tests dataset {f} row {bad['_row'][0]}: malformed record (tests "
                                    f"holds a null; tests must be a list of strings)")
        frames.append((f, df))
    names = sorted({s for _, df in frames for s in df["sha1"].cast(pl.String).to_list()})
    if not names:
        raise MultipltError(f"tests dataset {uri} has no rows")
    chosen = select_shard(names, shard)
    rows: dict[str, dict] = {}
    duplicates: list[dict] = []
    for f, df in frames:
        for row in df.filter(pl.col("sha1").cast(pl.String).is_in(chosen)).to_dicts():
            n = row.pop("_row")
            bad = [k for k in ("content", "sha1", "entrypoint") if not isinstance(row[k], str) or not row[k]]
            unsafe = not bad and unsafe_name(row["sha1"])  # it names the function's completion file
            if bad or unsafe or not isinstance(row["tests"], list):
                what = ", ".join(bad) or (f"sha1 {row['sha1']!r} {unsafe}" if unsafe else "tests (not a list)")
                raise MultipltError(f"tests dataset {f} row {n}: malformed record ({what})")
            if not all(isinstance(t, str) for t in row["tests"]):
                raise MultipltError(f"tests dataset {f} row {n}: malformed record (tests holds a "
                                    f"non-string; tests must be a list of strings)")
            if row["sha1"] in rows:
                duplicates.append({"sha1": row["sha1"], "id": row["id"], "entrypoint": row["entrypoint"]})
            else:
                rows[row["sha1"]] = row
    if not any(malformed(row) is None for row in rows.values()):
        _refuse_all_malformed(uri, frames)
    return [rows[k] for k in chosen], len(names), digest.hexdigest(), duplicates


def _refuse_all_malformed(uri: str, frames: list) -> None:
    """MultipltError when no row of the whole dataset is a function testgen would take
    (testgen.inputs.all_malformed: its content parses and defines the entrypoint), as testgen
    refuses such functions. Some malformed rows among good ones are dropped at the build with
    their reason. Only a shard without a well-formed row looks further, and stops at the first
    one of another shard."""
    found = all_malformed({**row, "_file": f} for f, df in frames for row in df.iter_rows(named=True))
    if found is not None:
        first, reason = found
        total = sum(df.height for _, df in frames)
        raise MultipltError(f"tests dataset {uri}: all {total} rows are malformed; the first "
                            f"({first['_file']} row {first['_row']}, id {first['id']!r}): {reason}")
