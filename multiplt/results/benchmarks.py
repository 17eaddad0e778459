"""The benchmark of a results-store row, as one name for every language."""

from __future__ import annotations

import functools
import re

_SELECTION = r"(?:_p[0-9a-f]{8})?(?:_first\d+)?"  # the markers of run_folder.selection_marker
_SETTINGS = r"(?:_g[0-9a-f]{8})?"  # the DAG's marker of generation settings off the defaults


def benchmark_name(row: dict) -> str:
    """The benchmark of a results-store row as one name for every language: `humaneval`,
    `humaneval_first5`, `humaneval_p<hash>`, `mbpp`; "" when the row names none. The `benchmark`
    column holds the file the run was generated from (`.../benchmarks/humaneval_first5-lua.jsonl`
    in the DAG's layout): its name without the extension and the `-<lang>` suffix. `multiplt
    evaluate --limit/--problems` generates from the full file and marks only the run folder
    (`humaneval_first5-lua-...`, the `dataset` column), so that marker is added from there, and
    so is the DAG's `_g<hash>` of generation settings off the defaults (max_new_tokens, top_p,
    backend): such a run is another measurement, so it counts as a benchmark of its own."""
    return _benchmark_name(row.get("benchmark") or "", row.get("lang") or "", row.get("dataset") or "")


@functools.lru_cache(maxsize=4096)  # a store repeats these for every k and epoch
def _benchmark_name(uri: str, lang: str, dataset: str) -> str:
    from multiplt.evaluation.run_folder import safe_part

    uri = uri.rstrip("/")
    if not uri:
        return ""
    name = re.sub(r"\.(jsonl|json)(\.gz)?$", "", uri.rsplit("/", 1)[-1])
    if lang and name.endswith(f"-{lang}"):
        name = name[:-len(lang) - 1]
    # the run folder's benchmark part (before its first "-"): the name, maybe after the rest of a
    # source path (`multiplt evaluate --source /data/mbpp.jsonl`), then its markers
    part = dataset.split("-", 1)[0]
    marked = re.search(r"(?:^|_)" + re.escape(safe_part(name)) + f"({_SELECTION}{_SETTINGS})$", part)
    return name + marked.group(1) if marked else name
