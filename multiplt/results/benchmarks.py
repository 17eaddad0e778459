"""The benchmark of a results-store row, as one name for every language, and the part of its
benchmark file a run covered (`recorded_selection`, which `multiplt results record` stores)."""

from __future__ import annotations

import functools
import hashlib
import logging
import re

from multiplt.evaluation.run_folder import (SELECTION_PATTERN, benchmark_selection, built_marker,
                                            file_benchmark, folder_markers)

LOG = logging.getLogger("multiplt.results")

# the mark of a path or URI source in its benchmark file's name (benchmarks.sources.benchmark_name,
# which `multiplt evaluate` and the evaluate DAG share): it keeps two sources of one file name
# apart in storage; on the board the name is the source's file name
_SOURCE_MARK = re.compile(f"_s[0-9a-f]{{8}}(?={SELECTION_PATTERN}$)")
PARTIAL = "_partial"  # a run recorded with --allow-partial: not all of what it selected was scored


def benchmark_name(row: dict) -> str:
    """The benchmark of a results-store row as one name for every language: `humaneval`,
    `humaneval_first5`, `humaneval_p<hash>`, `humaneval_partial`, `mbpp`; "" when the row names
    none. The `benchmark` column holds the file the run was generated from
    (`.../benchmarks/humaneval_first5-lua.jsonl` in the DAG's layout, `mbpp_s<hash of the
    source>-lua.jsonl` for a path source): its name without the extension, the `-<lang>`
    suffix and that `_s<hash>`. Then the part of it the run covered: the row's `selection`, which `results record`
    takes from the run record (recorded_selection), or, for rows recorded before that column
    existed (null), the marker `multiplt evaluate --limit/--problems` puts in the run folder's
    name (`humaneval_first5-lua-...`, the `dataset` column). Last the DAG's `_g<hash>` of
    generation settings off the defaults (max_new_tokens, top_p, backend, tokenizer), from the
    folder's name: such a run is another measurement, so it counts as a benchmark of its own, as
    a partial one does."""
    return _benchmark_name(row.get("benchmark") or "", row.get("lang") or "", row.get("dataset") or "",
                           row.get("selection"))


@functools.lru_cache(maxsize=4096)  # a store repeats these for every k and epoch
def _benchmark_name(uri: str, lang: str, dataset: str, selection: str | None) -> str:
    uri = uri.rstrip("/")
    if not uri:
        return ""
    name = file_benchmark(uri, lang)
    chosen, settings = folder_markers(name, dataset)
    return _SOURCE_MARK.sub("", name) + (chosen if selection is None else selection) + settings


def recorded_selection(run: str, config: dict, covered: list[str], dataset: str,
                       partial: bool) -> str | None:
    """The `selection` column of a run's rows: what benchmark_name adds to the benchmark file's
    name so that a run on part of a benchmark never stands in for the whole. The run record's
    `selection` (generate keeps there what the generates into the folder covered of their
    benchmark file, run_folder.benchmark_selection), then `_partial` when `partial` (recorded
    with --allow-partial).

    A record written before generate kept it: derived here the same way from the benchmark file
    the record names, `covered` (the problems generate selected) and the run folder's name
    (`dataset`); None (benchmark_name then reads the folder's name, as for rows recorded before
    this column) when the file cannot be read or is no longer the one generate read (its sha256
    differs): a warning says so."""
    if config.get("selection") is not None:
        return config["selection"] + (PARTIAL if partial else "")
    uri = config.get("benchmark")
    if not uri:
        return PARTIAL if partial else None
    name = file_benchmark(str(uri), str(config.get("lang") or ""))
    in_folder, settings = folder_markers(name, dataset)
    problem = _benchmark_problems(str(uri), config.get("benchmark_sha256"), run)
    if isinstance(problem, str):
        selection = in_folder + PARTIAL if partial else None
        LOG.warning("%s: cannot tell which part of its benchmark the run covered: %s; its rows "
                    "count as benchmark %s", run, problem, name + (selection or in_folder) + settings)
        return selection
    names, built = problem
    return benchmark_selection(name, built, names, covered, in_folder) + (PARTIAL if partial else "")


def _benchmark_problems(uri: str, sha256: str | None, run: str) -> tuple[list[str], str] | str:
    """(problem names in file order, the file's own selection marker from its build report) of
    the benchmark file generate read; a string saying why not when it cannot be read or changed.
    A relative path (as generate was given it) is read from the current folder, else from the
    first folder above the run folder where the file generate read is (its sha256)."""
    from multiplt import storage

    why, candidates = None, _candidates(uri, run)
    for candidate in candidates:
        try:
            if not storage.exists(candidate):
                continue
            data = storage.read_bytes(candidate)
        except Exception as exc:  # noqa: BLE001 - any unreadable location: the run is still recorded
            why = why or f"{candidate} cannot be read ({exc})"
            continue
        if sha256 and hashlib.sha256(data).hexdigest() != sha256:
            why = why or (f"{candidate} changed since generate read it (its sha256 differs from the "
                          f"run record's)")
            continue
        uri = candidate
        break
    else:
        where = " from the current folder nor from a folder above the run folder" if len(candidates) > 1 else ""
        return why or f"{uri} does not exist{where}"
    try:
        names = [row["name"] for row in storage.read_jsonl(uri)]
    except Exception as exc:  # noqa: BLE001 - generate read it; whatever it is now, say so
        return f"{uri} is not a benchmark file ({exc})"
    return names, built_marker(uri)


def _candidates(uri: str, run: str) -> list[str]:
    """Where the benchmark generate read may be: `uri`; for a relative local path also that path
    under each folder above the (local) run folder, nearest first."""
    import os

    from multiplt import storage

    local = storage.local_path(run)
    if "://" in uri or os.path.isabs(uri) or local is None:
        return [uri]
    found, folder = [uri], os.path.dirname(os.path.abspath(local))
    while True:
        found.append(os.path.join(folder, uri))
        if os.path.dirname(folder) == folder:
            return found
        folder = os.path.dirname(folder)
