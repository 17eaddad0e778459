"""The benchmark of a results-store row, as one name for every language, and the part of its
benchmark file a run covered (`recorded_selection`, which `multiplt results record` stores)."""

from __future__ import annotations

import functools
import hashlib
import logging
import re

LOG = logging.getLogger("multiplt.results")

_SELECTION = r"(?:_p[0-9a-f]{8})?(?:_first\d+)?"  # the markers of run_folder.selection_marker
_SETTINGS = r"(?:_g[0-9a-f]{8})?"  # the DAG's marker of generation settings off the defaults
PARTIAL = "_partial"  # a run recorded with --allow-partial: not all of what it selected was scored


def benchmark_name(row: dict) -> str:
    """The benchmark of a results-store row as one name for every language: `humaneval`,
    `humaneval_first5`, `humaneval_p<hash>`, `humaneval_partial`, `mbpp`; "" when the row names
    none. The `benchmark` column holds the file the run was generated from
    (`.../benchmarks/humaneval_first5-lua.jsonl` in the DAG's layout): its name without the
    extension and the `-<lang>` suffix. Then the part of it the run covered: the row's
    `selection`, which `results record` derives from the run (recorded_selection), or, for rows
    recorded before that column existed (null), the marker `multiplt evaluate --limit/--problems`
    puts in the run folder's name (`humaneval_first5-lua-...`, the `dataset` column). Last the
    DAG's `_g<hash>` of generation settings off the defaults (max_new_tokens, top_p, backend),
    from the folder's name: such a run is another measurement, so it counts as a benchmark of
    its own, as a partial one does."""
    return _benchmark_name(row.get("benchmark") or "", row.get("lang") or "", row.get("dataset") or "",
                           row.get("selection"))


def file_benchmark(uri: str, lang: str) -> str:
    """The name of a benchmark file without its extension and `-<lang>` suffix."""
    name = re.sub(r"\.(jsonl|json)(\.gz)?$", "", uri.rstrip("/").rsplit("/", 1)[-1])
    if lang and name.endswith(f"-{lang}"):
        name = name[:-len(lang) - 1]
    return name


def folder_markers(name: str, dataset: str) -> tuple[str, str]:
    """(selection, settings): the markers the run folder's name (`dataset`) puts after the
    benchmark `name` (`multiplt evaluate --limit 5`: `_first5`; the DAG's `_g<hash>`), each ""
    when it has none."""
    from multiplt.evaluation.run_folder import safe_part

    # the run folder's benchmark part (before its first "-"): the name, maybe after the rest of a
    # source path (`multiplt evaluate --source /data/mbpp.jsonl`), then its markers
    part = dataset.split("-", 1)[0]
    marked = re.search(r"(?:^|_)" + re.escape(safe_part(name)) + f"({_SELECTION})({_SETTINGS})$", part)
    return (marked.group(1), marked.group(2)) if marked else ("", "")


@functools.lru_cache(maxsize=4096)  # a store repeats these for every k and epoch
def _benchmark_name(uri: str, lang: str, dataset: str, selection: str | None) -> str:
    uri = uri.rstrip("/")
    if not uri:
        return ""
    name = file_benchmark(uri, lang)
    chosen, settings = folder_markers(name, dataset)
    return name + (chosen if selection is None else selection) + settings


def recorded_selection(run: str, config: dict, covered: list[str], dataset: str,
                       partial: bool) -> str | None:
    """The `selection` column of a run's rows: what benchmark_name adds to the benchmark file's
    name so that a run on part of a benchmark never stands in for the whole. "" when the run
    covered every problem of a file built from all of its source; else the markers, as the
    DAG's names spell them (run_folder.selection_marker):

    - the file's: `benchmark build --limit/--problems` (its `<file>.report.json`) made the file
      from part of its source, unless the file's name already says so (the DAG's
      `humaneval_first5-lua.jsonl`);
    - the run's: `covered` (the problems generate selected) is not all of the file: the folder
      name's marker where it has one (`multiplt evaluate`), else `_first<N>` when they are the
      file's first N, else `_p<hash of their sorted names>`;
    - `_partial` when `partial` (recorded with --allow-partial).

    None (benchmark_name then reads the folder's name, as for rows recorded before this column)
    when the benchmark file cannot be read or is no longer the one generate read (its sha256
    differs): a warning says so."""
    from multiplt.evaluation.run_folder import selection_marker

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
    built = "" if name.endswith(built) else built
    wanted = set(covered)
    if wanted >= set(names):
        ran = ""
    elif in_folder:
        ran = in_folder
    elif wanted == set(names[:len(wanted)]):
        ran = f"_first{len(wanted)}"
    else:
        ran = selection_marker(None, ",".join(sorted(wanted)))
    return built + ran + (PARTIAL if partial else "")


def _benchmark_problems(uri: str, sha256: str | None, run: str) -> tuple[list[str], str] | str:
    """(problem names in file order, the file's own selection marker from its build report) of
    the benchmark file generate read; a string saying why not when it cannot be read or changed.
    A relative path (as generate was given it) is read from the current folder, else from the
    first folder above the run folder where the file generate read is (its sha256)."""
    from multiplt import storage
    from multiplt.evaluation.run_folder import selection_marker

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
    built = ""
    report = uri + ".report.json"
    try:
        config = (storage.read_json(report).get("config") or {}) if storage.exists(report) else {}
    except Exception:  # noqa: BLE001 - an unreadable report: the file is taken as built from all
        config = {}
    if isinstance(config, dict):
        problems = config.get("problems")
        if isinstance(problems, list):
            problems = ",".join(str(p) for p in problems)
        limit = config.get("limit")
        built = selection_marker(limit if isinstance(limit, int) else None,
                                 problems if isinstance(problems, str) else None)
    return names, built


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
