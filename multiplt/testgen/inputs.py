"""Reading the corpus step's `functions/` dataset and picking one shard of it.

Input: a parquet file, or a folder of parquet shards, with at least `content`, `id`, `sha1`,
`entrypoint` and `context` (the corpus step's output, `URI/functions/`; passing the corpus
output root works too). Every other column is kept as provenance. A corpus build's dropped
rows (`excluded/`) and work folder (`_work/`: unmerged shards, their dropped rows) are never
read. Files without rows are skipped; a dataset without any row is an error (there is nothing
to write tests for, and an empty output would look like a model that wrote none). Shard K of N
holds the rows whose sha1, read as a number, is K modulo N: stable whatever the input's file
layout.
"""

from __future__ import annotations

import ast

from multiplt import storage
from multiplt.errors import MultipltError

REQUIRED = ("content", "id", "sha1", "entrypoint", "context")
WORK, EXCLUDED = "_work", "excluded"  # a corpus build's work folder and its dropped rows
PASS_INSTEAD = "pass the corpus output root or its functions/ folder"


def _refuse_dropped_rows(uri: str, folders: list[str]) -> None:
    """MultipltError when `folders` (the path of `uri` below the given input) go through a
    corpus build's `_work/` or `excluded/` folder."""
    if WORK in folders:
        raise MultipltError(f"{uri} is under a corpus build's {WORK}/ folder (unmerged shards and "
                            f"dropped rows), which testgen never reads: {PASS_INSTEAD}")
    if EXCLUDED in folders:
        raise MultipltError(f"{uri} is in a corpus build's {EXCLUDED}/ folder (dropped rows), which "
                            f"testgen never reads: {PASS_INSTEAD}")


def _refuse_testgen_output(uri: str, root: str) -> None:
    """MultipltError when `root` (the given folder, or the one above a given excluded/) is a
    testgen output (a shard's work/<shard>/rows.jsonl: pipeline._is_ours), whose tests/ and
    excluded/ are written tests and dropped rows, not a corpus build's functions."""
    from multiplt.testgen.pipeline import _is_ours

    if _is_ours(root):
        what = "is a testgen output" if root == uri else f"is in the testgen output {root}"
        raise MultipltError(f"functions dataset {uri} {what} (written tests and dropped rows), not "
                            f"a corpus build's functions: {PASS_INSTEAD} (a testgen output is the "
                            f"input of `multiplt translate --tests`)")


def _refuse_unmerged(root: str, uri: str) -> None:
    """MultipltError when the corpus build output `root` (one with a `_work/` folder) has no
    finished merge: `corpus merge` writes functions/part-* one at a time, then funnel.json, then
    `_work/merged.json` (which records the number of shards), so until then functions/ may lack
    parts."""
    marker = storage.join(root, WORK, "merged.json")
    missing = [] if storage.exists(marker) else [f"{WORK}/merged.json"]
    if not missing:
        identity = storage.read_json(marker)
        shards = identity.get("shards") if isinstance(identity, dict) else None
        if isinstance(shards, int) and not isinstance(shards, bool):
            missing = [f"functions/part-{k:05d}.parquet" for k in range(shards)
                       if not storage.exists(storage.join(root, "functions", f"part-{k:05d}.parquet"))]
    if missing:
        raise MultipltError(f"functions dataset {uri} is a corpus build output whose merge has not "
                            f"finished (no {', '.join(missing[:3])}"
                            f"{f' and {len(missing) - 3} more' if len(missing) > 3 else ''}): run "
                            f"`multiplt corpus merge --out {root}` first")


def parquet_files(uri: str) -> list[str]:
    """The files to read: `uri` itself (a .parquet file), the `functions/` folder below it (a
    corpus output root), or else every .parquet file below it. A corpus output root without
    `functions/` (its shards not merged yet), one whose merge has not finished (its `_work/`
    without `merged.json`; also when its `functions/` folder is given) and any path through
    `_work/` or `excluded/` are refused with MultipltError."""
    path = uri.split("://", 1)[-1].rstrip("/").split("/")
    is_file = path[-1].endswith(".parquet")
    own = path[:-1] if is_file else path
    if WORK in own:  # the given path itself: every folder of it counts for _work/
        _refuse_dropped_rows(uri, [WORK])
    if own and own[-1] == EXCLUDED:  # excluded/ counts as the innermost folder only, not higher up
        folder = uri.rstrip("/").rpartition("/")[0] if is_file else uri.rstrip("/")
        above = folder.rpartition("/")[0]
        _refuse_testgen_output(uri, above or ("/" if folder.startswith("/") else "."))
        _refuse_dropped_rows(uri, [EXCLUDED])
    if not storage.exists(uri):
        raise MultipltError(f"functions dataset {uri} does not exist")
    if is_file:
        return [uri]
    if storage.is_file(uri):
        raise MultipltError(f"functions dataset {uri} is not a parquet file (*.parquet) or a folder "
                            f"of them: {PASS_INSTEAD}")
    _refuse_testgen_output(uri, uri)
    prefix = uri.rstrip("/") + "/"
    below = {u: u[len(prefix):] for u in storage.ls(uri, recursive=True)}
    functions = sorted(u for u, rel in below.items()
                       if rel.startswith("functions/") and u.endswith(".parquet"))
    if functions:
        if any(rel.startswith(WORK + "/") for rel in below.values()):
            _refuse_unmerged(uri.rstrip("/"), uri)
        return functions
    if path[-1] == "functions" and (len(path) > 1 or "://" not in uri):
        root = uri.rstrip("/")[: -len("functions")].rstrip("/") or "."
        if storage.exists(storage.join(root, WORK)):  # a corpus build's functions/ folder
            _refuse_unmerged(root, uri)
    if any(rel.startswith(WORK + "/") or rel == "corpus_config.json" for rel in below.values()):
        raise MultipltError(f"functions dataset {uri} is a corpus build output without functions/ (its "
                            f"shards are not merged yet): run `multiplt corpus merge --out {uri}` first")
    files = sorted(u for u, rel in below.items() if u.endswith(".parquet"))
    for f in files:
        _refuse_dropped_rows(f, below[f].split("/")[:-1])
    if not files:
        raise MultipltError(f"functions dataset {uri} holds no parquet files")
    return files


def read_functions(uri: str):
    """All rows of the dataset as one polars DataFrame; MultipltError naming what is wrong,
    also when no file holds a row. A file without rows adds nothing and is skipped before its
    columns are checked: an empty parquet file may have no columns at all."""
    import polars as pl

    frames = []
    for f in parquet_files(uri):
        df = storage.read_parquet(f)
        if df.height == 0:
            continue
        missing = [c for c in REQUIRED if c not in df.columns]
        if missing:
            raise MultipltError(f"{f} lacks required column(s) {', '.join(missing)} "
                                f"(a functions dataset needs {', '.join(REQUIRED)})")
        _check_tests(f, df)
        frames.append(df)
    if not frames:
        raise MultipltError(f"functions dataset {uri} has no rows")
    try:
        return pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]
    except Exception as exc:  # polars raises several types for incompatible schemas
        raise MultipltError(f"the parquet files of {uri} do not share a schema: {exc}") from None


def _check_tests(uri: str, df) -> None:
    """The optional `tests` column (known tests for the prompt) holds a list of str per row, or
    null; anything else (a string would become one test per character) is an error naming the
    file, and the row for a null test in a list."""
    import polars as pl

    if "tests" not in df.columns or df.schema["tests"] == pl.Null:
        return
    if df.schema["tests"] not in (pl.List(pl.String), pl.List(pl.Null)):
        raise MultipltError(f"{uri}: column tests is {df.schema['tests']}, not a list of strings "
                            "(known tests: list[str] per row, or null)")
    bad = df.with_row_index("_row").filter(pl.col("tests").list.eval(pl.element().is_null()).list.any())
    if bad.height:
        row = bad.row(0, named=True)
        raise MultipltError(f"{uri} row {row['_row']} (sha1 {row['sha1']}): tests holds a null; "
                            "known tests must be a list of strings")


def in_shard(sha1: str, shard: tuple[int, int] | None) -> bool:
    if shard is None:
        return True
    try:
        return int(sha1, 16) % shard[1] == shard[0]
    except (TypeError, ValueError):
        return shard[0] == 0  # malformed sha1: shard 0 reports it


def all_malformed(rows) -> tuple[dict, str] | None:
    """(the first row, why it is malformed) when `rows` holds rows and every one is malformed,
    else None: an input with no usable row at all is a wrong input (another table, a broken
    export), which testgen and translate refuse instead of dropping row by row into an empty
    run that looks like a model that wrote nothing. Stops at the first usable row."""
    first = None
    for row in rows:
        if malformed(row) is None:
            return None
        first = first or row
    return None if first is None else (first, malformed(first))


def malformed(row: dict) -> str | None:
    """Why a row cannot be used (None when it can)."""
    for col in ("content", "sha1", "entrypoint"):
        if not isinstance(row.get(col), str) or not row[col]:
            return f"{col} is empty or not a string"
    from multiplt.generation.folder import unsafe_name

    why = unsafe_name(row["sha1"])  # it names the function's completion file
    if why:
        return f"sha1 {why}"
    if row.get("context") is not None and not isinstance(row["context"], str):
        return "context is not a string"
    try:
        tree = ast.parse(row["content"])
    except (SyntaxError, ValueError) as exc:
        return f"content does not parse: {exc}"
    names = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if row["entrypoint"] not in names:
        return f"content defines no top-level function {row['entrypoint']}"
    return None
