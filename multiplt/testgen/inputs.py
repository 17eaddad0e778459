"""Reading the corpus step's `functions/` dataset and picking one shard of it.

Input: a parquet file, or a folder of parquet shards, with at least `content`, `id`, `sha1`,
`entrypoint` and `context` (the corpus step's output, `URI/functions/`; passing the corpus
output root works too). Every other column is kept as provenance. Shard K of N holds the rows
whose sha1, read as a number, is K modulo N: stable whatever the input's file layout.
"""

from __future__ import annotations

import ast

from multiplt import storage
from multiplt.errors import MultipltError

REQUIRED = ("content", "id", "sha1", "entrypoint", "context")


def parquet_files(uri: str) -> list[str]:
    if not storage.exists(uri):
        raise MultipltError(f"functions dataset {uri} does not exist")
    if uri.rstrip("/").endswith(".parquet"):
        return [uri]
    nested = storage.join(uri, "functions")
    files = sorted(u for u in storage.ls(uri, recursive=True) if u.endswith(".parquet"))
    under = [u for u in files if u.startswith(nested.rstrip("/") + "/")]
    files = under or files
    if not files:
        raise MultipltError(f"functions dataset {uri} holds no parquet files")
    return files


def read_functions(uri: str):
    """All rows of the dataset as one polars DataFrame; MultipltError naming what is wrong."""
    import polars as pl

    frames = []
    for f in parquet_files(uri):
        df = storage.read_parquet(f)
        missing = [c for c in REQUIRED if c not in df.columns]
        if missing:
            raise MultipltError(f"{f} lacks required column(s) {', '.join(missing)} "
                                f"(a functions dataset needs {', '.join(REQUIRED)})")
        frames.append(df)
    try:
        return pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]
    except Exception as exc:  # polars raises several types for incompatible schemas
        raise MultipltError(f"the parquet files of {uri} do not share a schema: {exc}") from None


def in_shard(sha1: str, shard: tuple[int, int] | None) -> bool:
    if shard is None:
        return True
    try:
        return int(sha1, 16) % shard[1] == shard[0]
    except (TypeError, ValueError):
        return shard[0] == 0  # malformed sha1: shard 0 reports it


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
