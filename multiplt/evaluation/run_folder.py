"""The run folder: its name and every file in it, in one place.

One folder per (benchmark, language, model, revision, temperature), named
`<benchmark>-<lang>-<model>-<revision>-<temperature>` like MultiPL-E's
`{dataset}-{lang}-{model}-{temperature}-reworded` but with the revision, and safe as one path
segment (a `/` in a Hub name or URI becomes `_`). Each stage adds its files:

  <name>.json.gz            multiplt generate   a MultiPL-E completions file per problem
  _multiplt_run.yaml        multiplt generate   the resolved run config, the problems it
                                                selected and which part of the benchmark
                                                they are (read_run_record)
  <name>.results.json.gz    multiplt execute    the same keys plus `results`
  _scores.csv               multiplt score      pass@k rows under MultiPL-E's header
  _per_problem.parquet      multiplt score      n, c and pass@k per problem

Side files start with `_` and never end in .json/.json.gz, so MultiPL-E's own tools, which glob
`*.json.gz` and `*.results.json.gz`, see only problems. The scores CSV is written and read here,
and `format_table` is the one plain-text table every command prints.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Iterable, Sequence

from multiplt.errors import MultipltError

RUN_FILE = "_multiplt_run.yaml"
SCORES_FILE = "_scores.csv"
PER_PROBLEM_FILE = "_per_problem.parquet"
RESULTS_SUFFIX = ".results.json.gz"
RESULTS_SUFFIXES = (RESULTS_SUFFIX, ".results.json")   # read both, as MultiPL-E's pass_k.py
COMPLETIONS_SUFFIXES = (".json.gz", ".json")
#: MultiPL-E's pass@k CSV header (pass_k.py)
SCORES_HEADER = ("Dataset", "Pass@k", "Estimate", "NumProblems", "MinCompletions", "MaxCompletions")

_UNSAFE = re.compile(r"[^A-Za-z0-9._+=@,]+")


# ---- the folder's name ---------------------------------------------------------------------------
def safe_part(text) -> str:
    """One path segment: runs of characters other than letters, digits and ._+=@, become `_`;
    `-` is reserved as the separator of the name's parts."""
    part = _UNSAFE.sub("_", str(text)).strip("_.")
    return part or "none"


def selection_marker(limit: int | None, problems: str | None) -> str:
    """`_p<hash of the sorted names>` and/or `_first<N>` when only part of a benchmark is used
    (`--problems`, `--limit`), else empty: appended to the benchmark's part of a name, so a
    partial run never shares a benchmark file or run folder with the full one (whose scores
    would then cover the union of both runs' problems)."""
    marker = ""
    if problems:
        import hashlib

        picked = ",".join(sorted(p.strip() for p in problems.split(",") if p.strip()))
        marker += "_p" + hashlib.sha256(picked.encode()).hexdigest()[:8]
    if limit:
        marker += f"_first{int(limit)}"
    return marker


#: the markers selection_marker puts after a benchmark's name, and the DAG's `_g<hash>` of
#: generation settings off its defaults after them
SELECTION_PATTERN = r"(?:_p[0-9a-f]{8})?(?:_first\d+)?"
SETTINGS_PATTERN = r"(?:_g[0-9a-f]{8})?"
# a run record's `selection`: the benchmark file's own markers, then the run's (benchmark_selection)
_RECORDED_SELECTION = re.compile(f"{SELECTION_PATTERN}{SELECTION_PATTERN}")


def file_benchmark(uri: str, lang: str) -> str:
    """The name of a benchmark file without its extension and `-<lang>` suffix."""
    name = re.sub(r"\.(jsonl|json)(\.gz)?$", "", uri.rstrip("/").rsplit("/", 1)[-1])
    if lang and name.endswith(f"-{lang}"):
        name = name[:-len(lang) - 1]
    return name


def folder_markers(name: str, dataset: str) -> tuple[str, str]:
    """(selection, settings): the markers a run folder's name (`dataset`) puts after the
    benchmark `name` (`multiplt evaluate --limit 5`: `_first5`; the DAG's `_g<hash>`), each ""
    when it has none."""
    # the run folder's benchmark part (before its first "-"): the name, maybe after the rest of a
    # source path (folders of `multiplt evaluate --source /data/mbpp.jsonl` by older versions),
    # then its markers
    part = dataset.split("-", 1)[0]
    markers = f"({SELECTION_PATTERN})({SETTINGS_PATTERN})$"
    marked = re.search(r"(?:^|_)" + re.escape(safe_part(name)) + markers, part)
    return (marked.group(1), marked.group(2)) if marked else ("", "")


def built_marker(uri: str) -> str:
    """The selection marker of a benchmark file that `benchmark build --limit/--problems` made
    from part of its source (its `<uri>.report.json` says so); "" for one built from all of it,
    and for a file without a readable report (one the user put there is taken as it is). A
    report that does not describe the file beside it (two builds into one file at once) is an
    error (build.built_report), not a label."""
    from multiplt.benchmarks.build import ReportMismatch, built_report

    try:
        config = (built_report(uri) or {}).get("config") or {}
    except ReportMismatch:  # a report of another build's file: its selection would mislabel
        raise
    except Exception:  # noqa: BLE001 - an unreadable report: the file is taken as built from all
        config = {}
    if not isinstance(config, dict):
        return ""
    problems, limit = config.get("problems"), config.get("limit")
    if isinstance(problems, list):
        problems = ",".join(str(p) for p in problems)
    return selection_marker(limit if isinstance(limit, int) else None,
                            problems if isinstance(problems, str) else None)


def benchmark_selection(name: str, built: str, names: list[str], covered: Iterable[str],
                        in_folder: str = "") -> str:
    """What a run covered of the benchmark file `name` (file_benchmark), as markers after that
    name: `built` (built_marker) unless the name already ends in it (the DAG's
    `humaneval_first5-lua.jsonl`), then the run's part: "" when `covered` (the problems the
    generates into the folder selected) holds all of `names` (the file's, in file order); else
    `in_folder`, the folder name's marker where it has one (`multiplt evaluate --problems`
    spells its folder so), else `_first<N>` when they are the file's first N, else
    `_p<hash of their sorted names>`, as the DAG's names spell them (selection_marker)."""
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
    return built + ran


def is_recorded_selection(value) -> bool:
    """Whether `value` can be a run record's `selection` (benchmark_selection's markers)."""
    return isinstance(value, str) and _RECORDED_SELECTION.fullmatch(value) is not None


def run_folder_name(benchmark: str, lang: str, model: str, revision: str | None,
                    temperature: float) -> str:
    model = re.sub(r"^[a-z0-9]+://", "", str(model)).rstrip("/")
    return "-".join([safe_part(benchmark), safe_part(lang), safe_part(model),
                     safe_part(revision or "main"), safe_part(f"{float(temperature):g}")])


# ---- per-problem files ---------------------------------------------------------------------------
def completions_name(base: str) -> str | None:
    """The problem of a completions file name (`HumanEval_0.json.gz` or `.json`); None for
    results files and side files."""
    if results_name(base) is not None or base.startswith((".", "_")):
        return None
    return _strip(base, COMPLETIONS_SUFFIXES)


def results_name(base: str) -> str | None:
    """The problem of a results file name (`HumanEval_0.results.json.gz` or `.json`), else None."""
    return _strip(base, RESULTS_SUFFIXES)


def read_results(folder: str, whole: bool = False):
    """(uri, problem name, language, results list) of every results file in the run folder, in listing
    order, and the whole file as a fifth item with `whole` (for what it says of its own
    completions: passk.unfinished_file); a MultipltError names a file without a `results` list,
    or with a `name` or `language` that is no string."""
    from multiplt import storage

    for uri in storage.ls(folder):
        name = results_name(storage.basename(uri))
        if name is None:
            continue
        doc = storage.read_json(uri)
        results = doc.get("results") if isinstance(doc, dict) else None
        if not isinstance(results, list):
            raise MultipltError(f"{uri}: no `results` list")
        for key in ("name", "language"):
            if doc.get(key) is not None and not isinstance(doc[key], str):
                raise MultipltError(f"{uri}: `{key}` must be a string, got {doc[key]!r}")
        row = (uri, doc.get("name") or name, doc.get("language"), results)
        yield (*row, doc) if whole else row


def completion_counts(folder: str) -> dict[str, int]:
    """{problem: its number of completions} of every completions file in the run folder; a
    MultipltError names a file without a `completions` list (`multiplt execute` refuses it
    too, so its results, if any, are not of it)."""
    from multiplt import storage

    counts = {}
    for uri in storage.ls(folder):
        name = completions_name(storage.basename(uri))
        if name is None:
            continue
        doc = storage.read_json(uri)
        if not isinstance(doc, dict):
            raise MultipltError(f"{uri}: not a completions file (a JSON object), got "
                                f"{type(doc).__name__}")
        if not isinstance(doc.get("completions"), list):
            got = "none" if "completions" not in doc else type(doc["completions"]).__name__
            raise MultipltError(f"{uri}: no `completions` list (got {got}): not a completions file "
                                f"`multiplt execute` can run")
        completions = doc["completions"]
        if isinstance(doc.get("name"), str):
            name = doc["name"]
        counts[name] = len(completions)
    return counts


def unexecuted(folder: str, executed: dict[str, int],
               counts: dict[str, int] | None = None) -> list[tuple[str, int, int]]:
    """(problem, results, completions) of every completions file in the folder that holds more
    completions than `executed` ({problem: its number of results}) has results for it: not all
    run by `multiplt execute` yet (e.g. generate added samples after an execute). `counts` is
    the folder's completion_counts, when already read."""
    counts = completion_counts(folder) if counts is None else counts
    return sorted((name, executed.get(name, 0), want) for name, want in counts.items()
                  if executed.get(name, 0) < want)


#: what a malformed `selection` in a run record is
SELECTION_ERROR = ("selection {selection!r} is not the markers of a part of a benchmark (\"\", "
                   "_first<N>, _p<8 hex digits>)")
#: what score's errors about the run record advise (generate's: multiplt.generation.folder)
SCORE_ADVICE = "mend it (--allow-partial skips the check)"


def parse_run_yaml(text: str, uri: str):
    """The YAML document of the run record `text` read from `uri`, or one MultipltError line
    naming `uri`, the line and the reason: text that is not YAML, or a mapping that writes a key
    twice (multiplt.strict_yaml). PyYAML keeps the last of two silently, so a second `model:`
    typed into a record would have `results record` store that model, and score check the folder
    against it."""
    from multiplt import strict_yaml  # yaml: imported only by the commands that read a record

    return strict_yaml.parse(text, uri)


def read_run_record(folder: str, advice: str) -> dict | None:
    """The folder's run record (None when it has none): the one parser of `_multiplt_run.yaml`,
    for generate, which adds to it, and for score, which checks the folder against it. A
    MultipltError names a record that is not a YAML mapping, or whose `n` is not a positive
    whole number, `complete` not true or false, `problems` not a list of names, or
    `selection` not benchmark_selection's markers, and ends with `advice`: what the reader's
    user can do about it, which differs (SCORE_ADVICE)."""
    from multiplt import storage

    uri = storage.join(folder, RUN_FILE)
    if not storage.exists(uri):
        return None
    try:
        record = parse_run_yaml(storage.read_text(uri), uri)
    except MultipltError as exc:
        raise MultipltError(f"{exc}; it records the run this folder holds: {advice}") from None
    if not isinstance(record, dict):
        raise MultipltError(f"{uri} is not a run record (a YAML mapping); {advice}")
    n, complete, problems = record.get("n"), record.get("complete"), record.get("problems")
    selection = record.get("selection")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise MultipltError(f"{uri}: n must be a positive whole number, got {n!r}; {advice}")
    if complete is not None and not isinstance(complete, bool):
        raise MultipltError(f"{uri}: complete must be true or false, got {complete!r}; {advice}")
    if problems is not None and (not isinstance(problems, list)
                                 or not all(isinstance(p, str) and p for p in problems)):
        raise MultipltError(f"{uri}: problems must be a list of problem names, got {problems!r}; "
                            f"{advice}")
    if selection is not None and not is_recorded_selection(selection):
        raise MultipltError(f"{uri}: {SELECTION_ERROR.format(selection=selection)}; {advice}")
    return record


def recorded_generation(folder: str) -> tuple[int | None, bool | None, list[str] | None]:
    """(n, complete, selected) of the folder's run record, for score's checks: `n`, the most
    samples per problem any generate asked for (None without a record or without `n`, as in a
    MultiPL-E folder); `complete`, whether the last generate that wrote samples there finished
    them all; `selected`, the problems the generates into the folder selected (--limit,
    --problems, or the whole benchmark). The last two are None in records written before
    generate kept them. A malformed record is a MultipltError (read_run_record)."""
    record = read_run_record(folder, SCORE_ADVICE) or {}
    return record.get("n"), record.get("complete"), record.get("problems")


def ungenerated(n: int, counts: dict[str, int]) -> list[tuple[str, int, int]]:
    """(problem, completions, n) of every problem in `counts` (completion_counts) with fewer than
    the run record's n completions: `multiplt generate` did not finish it (interrupted, or a
    failed run). A selected problem with no file at all is never_generated's."""
    return sorted((name, have, n) for name, have in counts.items() if have < n)


def never_generated(selected: list[str], counts: dict[str, int],
                    executed: dict[str, int]) -> list[str]:
    """The problems of `selected` (the run record's `problems`) with neither a completions file
    in `counts` (completion_counts) nor a results file in `executed` ({problem: its number of
    results}), in the record's order: a generate selected them, and their file is gone (deleted,
    or lost by a stage-out); neither `ungenerated` nor `unexecuted` can see a problem that has
    no file. A results file holds its completions too, so a folder whose completions files were
    removed after execution is whole."""
    return [name for name in selected if name not in counts and name not in executed]


def results_file(name: str) -> str:
    return name + RESULTS_SUFFIX


def _strip(base: str, suffixes: tuple[str, ...]) -> str | None:
    for suffix in suffixes:
        if base.endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)]
    return None


# ---- the scores CSV ------------------------------------------------------------------------------
def scores_csv(rows: Iterable[dict]) -> str:
    """`_scores.csv`: MultiPL-E's header, then one row per k (dicts keyed by SCORES_HEADER)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SCORES_HEADER)
    for row in rows:
        writer.writerow([row[h] for h in SCORES_HEADER])
    return buffer.getvalue()


def parse_scores(text: str, uri: str) -> list[dict]:
    """The rows of a scores CSV, typed and keyed by SCORES_HEADER; a wrong header or value
    names the file and the line."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header != list(SCORES_HEADER):
        raise MultipltError(f"{uri}: header is {header}, expected {','.join(SCORES_HEADER)}")
    types = (str, int, float, int, int, int)
    rows = []
    for line_no, fields in enumerate(reader, start=2):
        if not fields:
            continue
        if len(fields) != len(SCORES_HEADER):
            raise MultipltError(f"{uri} line {line_no}: {len(fields)} fields, expected "
                                f"{len(SCORES_HEADER)}")
        try:
            row = {h: kind(v) for h, kind, v in zip(SCORES_HEADER, types, fields)}
        except ValueError as exc:
            raise MultipltError(f"{uri} line {line_no}: {exc}") from None
        if not 0.0 <= row["Estimate"] <= 1.0:
            raise MultipltError(f"{uri} line {line_no}: estimate {row['Estimate']} is not in [0, 1]")
        counts = ("Pass@k", "NumProblems", "MinCompletions", "MaxCompletions")
        if any(row[c] < 1 for c in counts if isinstance(row[c], int)):
            raise MultipltError(f"{uri} line {line_no}: {', '.join(counts)} must be at least 1")
        rows.append(row)
    if not rows:
        raise MultipltError(f"{uri} has no pass@k rows: did `multiplt score` find any results?")
    return rows


# ---- the one table formatter ---------------------------------------------------------------------
def format_table(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    """A plain-text table: left-aligned columns, a dashed line under the header; floats with four
    decimals, None as an empty cell. No trailing newline."""
    cells = [[str(h) for h in header]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def _cell(value) -> str:
    if value is None:
        return ""
    return f"{value:.4f}" if isinstance(value, float) else str(value)
