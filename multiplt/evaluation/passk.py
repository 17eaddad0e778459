"""pass@k over a folder of MultiPL-E results files (`<name>.results.json(.gz)`).

Per problem, with n results of which c pass (status OK and exit code 0), the unbiased estimator
(Chen et al., 2021) is 1 - C(n-c, k) / C(n, k) = (C(n, k) - C(n-c, k)) / C(n, k). We compute the
last form with exact integer binomials and one correctly rounded division, so the result is the
float nearest the true value for any n (1000 included), where the usual float product or
"1 - ratio" forms lose digits. The folder's estimate is the mean over its problems.

Where k > n for a problem the estimate is undefined: MultiPL-E's pass_k.py reports 1.0 there (a
known pitfall); we say so and leave that problem out of that k (and the whole k when no problem
has n >= k).

Side files written into the run folder (run_folder.py names them): the scores CSV under
MultiPL-E's header (Dataset = the folder's basename), and the per-problem table (problem,
language, n, c, pass@K per k, then its Timeout count and the least and most timeout limit its
results ran under).

A sample that timed out counts as failed, like any other failure, so a run whose programs ran
out of time on a loaded machine scores as low as a wrong model: score logs the statuses of the
scored samples and the timeout limits their results record (`multiplt execute` writes each
result's `timeout`), warns when more than half timed out or when they ran under more than one
limit, and its rows (the JSON output) carry the counts (status_summary), as the results store's
rows do (run_record).
"""

from __future__ import annotations

import collections
import logging
import math

from multiplt import storage
from multiplt.errors import MultipltError
from multiplt.evaluation import parquet
from multiplt.evaluation.run_folder import (PER_PROBLEM_FILE, RUN_FILE, SCORES_FILE, completion_counts,
                                            never_generated, read_results, recorded_generation,
                                            scores_csv, unexecuted, ungenerated)
from multiplt.languages.base import TIMEOUT
from multiplt.log import Funnel

LOG = logging.getLogger("multiplt.evaluation")
#: where `multiplt execute` keeps, in a results file, the results that finished ahead of an
#: earlier completion's (multiplt.execution.files.PENDING_KEY): a file with any is unfinished
PENDING_KEY = "multiplt_pending"


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k of one problem with n samples, c correct; needs 1 <= k <= n."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n} c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass@{k} is undefined with n={n} samples (need 1 <= k <= n)")
    if n - c < k:
        return 1.0
    total = math.comb(n, k)
    # One correctly rounded division of exact integers: no cancellation in "1 - small ratio".
    return (total - math.comb(n - c, k)) / total


def passed(result: dict) -> bool:
    return result.get("status") == "OK" and result.get("exit_code") == 0


def timeout_limit(result: dict) -> float | None:
    """The wall-clock limit in seconds a result ran under (its `timeout`, as `multiplt execute`
    writes it), or None where it records none (MultiPL-E's results) or no positive number."""
    value = result.get("timeout")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def _tally(results: list[dict]) -> tuple[dict[str, int], dict[float, int]]:
    """({status: results}, {timeout limit: results}) of one problem's results."""
    statuses = collections.Counter(r["status"] for r in results)
    limits = collections.Counter(timeout_limit(r) for r in results)
    limits.pop(None, None)
    return dict(statuses), dict(limits)


def status_summary(counts: list[dict], least: int = 1) -> dict:
    """The statuses of the samples of the problems with at least `least` results (those that
    pass@`least` counts), from read_counts' rows: `samples`, `statuses` ({status: count}, most
    first), `timeouts` (the Timeout count), `timeout_limits` ({limit in seconds: samples},
    sorted) and `no_limit` (samples whose result records no limit)."""
    statuses: collections.Counter = collections.Counter()
    limits: collections.Counter = collections.Counter()
    samples = 0
    for r in counts:
        if r["n"] >= least:
            samples += r["n"]
            statuses.update(r.get("statuses", {}))
            limits.update(r.get("limits", {}))
    return {"samples": samples,
            "statuses": dict(sorted(statuses.items(), key=lambda kv: (-kv[1], kv[0]))),
            "timeouts": statuses.get(TIMEOUT, 0),
            "timeout_limits": dict(sorted(limits.items())),
            "no_limit": samples - sum(limits.values())}


def _seconds(limit: float) -> str:
    return f"{limit:g} s"


def _checked(uri: str, results: list) -> list[dict]:
    """The results of one file; a malformed entry (not an object, no string `status`, no integer
    `exit_code`) is an error naming the file, never a failure (it would silently lower pass@k)."""
    for i, result in enumerate(results):
        if not isinstance(result, dict):
            raise MultipltError(f"{uri}: results[{i}] is not a JSON object "
                                f"(got {type(result).__name__})")
        if not isinstance(result.get("status"), str):
            raise MultipltError(f"{uri}: results[{i}] has no string `status` "
                                f"(got {result.get('status')!r})")
        if "exit_code" not in result:
            raise MultipltError(f"{uri}: results[{i}] has no `exit_code`")
        code = result["exit_code"]
        # null is taken for a failed run only (a MultiPL-E runner may write it for a timeout)
        if isinstance(code, bool) or not isinstance(code, (int, type(None))):
            raise MultipltError(f"{uri}: results[{i}] has an `exit_code` that is not an integer "
                                f"(got {code!r})")
        if code is None and result["status"] == "OK":
            raise MultipltError(f"{uri}: results[{i}] has status OK and a null `exit_code`")
    return results


def read_counts(in_uri: str, allow_partial: bool = True, funnel: Funnel | None = None) -> list[dict]:
    """[{problem, language, n, c}] for every results file in the folder with results (sorted by
    problem); `funnel` counts the results files it leaves out (an empty `results` list), and
    score the rest.

    Always an error naming the file: a malformed result entry (_checked), a completions file
    without a `completions` list (completion_counts), a results file with more results than its
    completions file has completions (check_not_over). Unless `allow_partial`, a folder not
    fully generated or not fully executed is an error too (check_complete): its score would
    silently cover only the samples that exist or the programs that ran."""
    rows, executed, counts, unfinished = _read_folder(in_uri, funnel)
    if not allow_partial:
        check_complete(in_uri, executed, counts, unfinished)
    return rows


def _read_folder(in_uri: str, funnel: Funnel | None = None
                 ) -> tuple[list[dict], dict[str, int], dict[str, int], list[tuple[str, int, int]]]:
    """(read_counts' rows, {problem: its number of results}, completion_counts, the results
    files' own unfinished problems (unfinished_file)), with the checks read_counts always
    makes."""
    rows, executed, files, unfinished = [], {}, {}, []
    for uri, problem, language, results, doc in read_results(in_uri, whole=True):
        executed[problem], files[problem] = len(results), uri
        short = unfinished_file(doc, results)
        if short is not None:
            unfinished.append((problem, *short))
        if not results:
            if funnel is not None:
                funnel.drop("results file without results")
            continue
        statuses, limits = _tally(_checked(uri, results))
        rows.append({"problem": problem, "language": language, "n": len(results),
                     "c": sum(1 for r in results if passed(r)), "statuses": statuses,
                     "limits": limits})
    counts = completion_counts(in_uri)
    check_not_over(in_uri, executed, counts, files)
    return sorted(rows, key=lambda r: r["problem"]), executed, counts, sorted(unfinished)


def unfinished_file(doc: dict, results: list) -> tuple[int, int] | None:
    """(results, completions) of a results file that says itself that it is not fully
    executed, else None: it holds fewer results than its own `completions` (`multiplt execute`
    copies the completions file into it and writes results as programs finish), or results
    waiting under `multiplt_pending` for an earlier completion's (an execute that was cut). A
    results file without completions (as MultiPL-E writes them) says nothing of them; the
    folder's completions files, where there are any, still do (check_complete)."""
    completions = doc.get("completions")
    want = len(completions) if isinstance(completions, list) else 0
    pending = doc.get(PENDING_KEY)
    if pending:
        indices = [int(i) for i in pending if str(i).isdecimal()] if isinstance(pending, dict) else []
        want = max(want, len(results) + 1, *(i + 1 for i in indices))
    return (len(results), want) if len(results) < want else None


def judge(in_uri: str, ks) -> tuple[list[dict] | None, list[tuple[str, int, int]]]:
    """judge_counts without its third item."""
    rows, unexecuted, _counts = judge_counts(in_uri, ks)
    return rows, unexecuted


def judge_counts(in_uri: str, ks) -> tuple[list[dict] | None, list[tuple[str, int, int]],
                                           list[dict]]:
    """What `multiplt score --allow-partial -k <ks>` would write into the folder now, writing
    nothing: its CSV rows (none for a k no problem has results enough for), and the problems
    that score without --allow-partial refuses as not fully executed (run_folder.unexecuted and
    unfinished_file: (problem, results, completions)), and read_counts' rows (for
    status_summary); (None, [], []) for a folder without results files, which has nothing to
    judge by. `results record` checks a folder's scores file against them. A malformed results
    or completions file is score's error."""
    counts, executed, completions, unfinished = _read_folder(in_uri)
    if not executed:
        return None, [], []
    return (score_rows(counts, sorted(set(ks)), storage.basename(str(in_uri).rstrip("/"))),
            _not_executed(in_uri, executed, completions, unfinished), counts)


def check_not_over(in_uri: str, executed: dict[str, int], counts: dict[str, int],
                   files: dict[str, str]) -> None:
    """Raise when a results file holds more results than its problem's completions file has
    completions (checked with or without --allow-partial: such a file is not a partial run but
    a stale one, e.g. the completions were cut after `multiplt execute`, and pass@k would count
    samples that are no longer there). `executed` is {problem: its number of results}, `counts`
    completion_counts, `files` {problem: its results file}. A problem without a completions
    file is not checked."""
    over = sorted((name, have, counts[name]) for name, have in executed.items()
                  if name in counts and have > counts[name])
    if over:
        name, have, want = over[0]
        more = f" (and {len(over) - 1} more results file(s) like it)" if len(over) > 1 else ""
        raise MultipltError(
            f"{files[name]}: {have} results for the {want} completions of problem {name}'s "
            f"completions file{more}: the completions changed after `multiplt execute`; run "
            f"`multiplt execute --in {in_uri}` to redo them; nothing written")


def _not_executed(in_uri: str, executed: dict[str, int], counts: dict[str, int],
                  unfinished: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """(problem, results, completions) of every problem not fully executed, sorted: by the
    folder's completions files (run_folder.unexecuted) or by its results file's own record
    (unfinished_file); where both tell, the larger count of completions."""
    found = {p: (have, want) for p, have, want in unfinished}
    for p, have, want in unexecuted(in_uri, executed, counts):
        if p not in found or found[p][1] < want:
            found[p] = (have, want)
    return sorted((p, have, want) for p, (have, want) in found.items())


def check_complete(in_uri: str, executed: dict[str, int],
                   counts: dict[str, int] | None = None,
                   unfinished: list[tuple[str, int, int]] = ()) -> None:
    """Raise unless the folder is fully generated and executed. Not fully generated: its run
    record `_multiplt_run.yaml` says `complete: false` (the last generate into it was
    interrupted or failed), or a problem it lists as selected has no completions file (deleted,
    or lost by a stage-out). Not fully executed: a problem with completions and no results file,
    or fewer results than completions (`multiplt execute` writes results as programs finish,
    and generate may have added samples since); `executed` is {problem: its number of results}.
    The checks read the completions files and the run record; a folder of results files alone
    (`execute --out` into a folder of its own) is checked by what each results file says of
    itself (`unfinished`, from unfinished_file: fewer results than its own `completions`, or
    results pending), and one of MultiPL-E's (no `completions` in its results files) has
    nothing to compare. `counts` is the folder's completion_counts, when already read."""
    counts = completion_counts(in_uri) if counts is None else counts
    n, complete, selected = recorded_generation(in_uri)
    if complete is False:
        short = ungenerated(n, counts) if n is not None else []
        shown = (", e.g. " + ", ".join(f"{p} ({have} of {want})" for p, have, want in short[:3])
                 if short else "")
        raise MultipltError(
            f"{in_uri}: not fully generated: the last `multiplt generate` into it did not "
            f"finish ({RUN_FILE} says complete: false){shown}; rerun it "
            f"{'' if n is None else f'with --n {n} '}to finish, then "
            f"`multiplt execute --in {in_uri}` (--allow-partial scores what there is); "
            f"nothing written")
    lost = never_generated(selected or [], counts, executed)
    if lost:
        raise MultipltError(
            f"{in_uri}: {len(lost)} problem(s) selected by `multiplt generate` ({RUN_FILE} lists "
            f"them) have no completions file, e.g. {', '.join(lost[:3])}: rerun the generate to "
            f"write them again, then `multiplt execute --in {in_uri}` (--allow-partial scores "
            f"only the problems there are); nothing written")
    missing = _not_executed(in_uri, executed, counts, list(unfinished))
    if missing:
        shown = ", ".join(f"{p} ({have} of {want})" for p, have, want in missing[:3])
        raise MultipltError(
            f"{in_uri}: {len(missing)} problem(s) not fully executed, e.g. {shown}: run "
            f"`multiplt execute --in {in_uri}` to finish (--allow-partial scores only the "
            f"programs that ran); nothing written")
    if not counts:
        LOG.info("score: %s has no completions files to check its results against (each results "
                 "file was checked against its own completions, where it holds them)", in_uri)
    else:
        LOG.info("score: %s is fully generated and executed (%d problems with completions%s)", in_uri,
                 len(counts), f", {len(selected)} selected by generate" if selected is not None else "")


def score(in_uri: str, ks=(1,), allow_partial: bool = False) -> list[dict]:
    """Score a results folder: return the CSV rows (dicts keyed by SCORES_HEADER, plus
    `Statuses`, `Timeouts` and `TimeoutLimits` of the samples each row counts: status_summary)
    and write the scores CSV and the per-problem table into the folder. A folder not fully
    generated or not fully executed is an error unless `allow_partial` (check_complete). Logs
    the problems and samples funnels and the scored samples' statuses and timeout limits
    (_log_statuses)."""
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise MultipltError(f"k must be positive integers, got {ks}")
    if not storage.exists(in_uri):
        raise MultipltError(f"{in_uri} does not exist: give a folder of <name>.results.json.gz files")
    if storage.is_file(in_uri):
        raise MultipltError(f"{in_uri} is a file, not a folder: give a folder of <name>.results.json.gz files")
    problems = Funnel("score problems")
    counts = read_counts(in_uri, allow_partial=allow_partial, funnel=problems)
    if allow_partial:
        LOG.info("score: --allow-partial: %s is not checked for problems or samples not yet "
                 "generated or executed", in_uri)
    if not counts:
        raise MultipltError(f"{in_uri}: no results files (<name>.results.json.gz) with results; "
                            "run `multiplt execute` first")
    _log_funnels(problems, counts, ks[0])
    _log_statuses(in_uri, status_summary(counts, ks[0]))
    for k in ks:
        short = [r for r in counts if r["n"] < k]
        if short:
            LOG.warning("pass@%d: %d of %d problems have fewer than %d completions (n=%d..%d); "
                        "left out of pass@%d (MultiPL-E would count them as 1.0)", k, len(short),
                        len(counts), k, min(r["n"] for r in short), max(r["n"] for r in short), k)
        if len(short) == len(counts):
            LOG.warning("pass@%d: no problem has %d completions; no pass@%d row", k, k, k)
    rows = score_rows(counts, ks, storage.basename(str(in_uri).rstrip("/")))
    if not rows:  # a header-only CSV would replace the folder's earlier scores
        ns = [r["n"] for r in counts]
        raise MultipltError(f"{in_uri}: no pass@k can be computed for k={','.join(map(str, ks))}: "
                            f"every problem has fewer than {ks[0]} completions (n={min(ns)}..{max(ns)}); "
                            f"nothing written")
    # a rescore of unchanged results writes nothing
    storage.write_text(storage.join(in_uri, SCORES_FILE), scores_csv(rows), if_changed=True)
    _write_per_problem(storage.join(in_uri, PER_PROBLEM_FILE), counts, ks)
    for row in rows:
        summary = status_summary(counts, row["Pass@k"])
        row.update(Statuses=summary["statuses"], Timeouts=summary["timeouts"],
                   TimeoutLimits=list(summary["timeout_limits"]))
    return rows


def score_rows(counts: list[dict], ks: list[int], dataset: str) -> list[dict]:
    """The scores CSV rows (dicts keyed by SCORES_HEADER) of read_counts' `counts`, one per k
    (sorted) that some problem has k results for; sets each count's `pass@<k>` (None where it
    has fewer than k results)."""
    rows = []
    for k in ks:
        usable = [r for r in counts if r["n"] >= k]
        for r in counts:
            r[f"pass@{k}"] = pass_at_k(r["n"], r["c"], k) if r["n"] >= k else None
        if not usable:
            continue
        estimate = sum(r[f"pass@{k}"] for r in usable) / len(usable)
        rows.append({"Dataset": dataset, "Pass@k": k, "Estimate": estimate,
                     "NumProblems": len(usable), "MinCompletions": min(r["n"] for r in usable),
                     "MaxCompletions": max(r["n"] for r in usable)})
    return rows


def _log_funnels(problems: Funnel, counts: list[dict], least: int) -> None:
    """Log the problems funnel (results files in, problems scored out; read_counts has counted
    the files without results) and the samples funnel (results in, results scored out): a
    problem with fewer results than the least k is in no pass@k row."""
    samples = Funnel("score samples")
    short = f"fewer than {least} results (the least k)"
    for r in counts:
        if r["n"] < least:
            problems.drop(short)
            samples.drop(f"of a problem with {short}", r["n"])
        else:
            problems.keep()
            samples.keep(r["n"])
    problems.log(LOG)
    samples.log(LOG)
    LOG.info("score: %d of the %d samples scored passed", sum(r["c"] for r in counts if r["n"] >= least),
             samples.kept)


def _log_statuses(in_uri: str, summary: dict) -> None:
    """One line of the scored samples' statuses and one of the timeout limits their results
    record; a WARNING when they ran under more than one limit (a Timeout under the shorter one
    may have passed under the longer) and when more than half of them timed out (pass@k then
    measures the machine's load as much as the model)."""
    samples, limits = summary["samples"], summary["timeout_limits"]
    LOG.info("score: statuses of the %d scored samples: %s", samples,
             ", ".join(f"{status} {n}" for status, n in summary["statuses"].items()) or "none")
    unrecorded = f"{summary['no_limit']} record no timeout" if summary["no_limit"] else ""
    shown = ", ".join(f"{_seconds(limit)} ({n})" for limit, n in limits.items())
    LOG.info("score: timeout limits of the scored samples: %s",
             "; ".join(part for part in (shown, unrecorded) if part) or "none")
    if len(limits) > 1:
        LOG.warning("score: the scored samples of %s ran under %d different timeout limits (%s): "
                    "their Timeouts are not comparable; `multiplt execute --in %s --timeout S` "
                    "with S >= %s runs those of the shorter limits again under one",
                    in_uri, len(limits), shown, in_uri, _seconds(max(limits)))
    if samples and summary["timeouts"] * 2 > samples:
        LOG.warning("score: %d of the %d scored samples of %s timed out (limit %s): pass@k counts "
                    "them as failures, and a loaded machine may have caused them; `multiplt "
                    "execute --in %s --timeout S` with a longer S runs them again",
                    summary["timeouts"], samples, in_uri,
                    ", ".join(_seconds(limit) for limit in limits) or "not recorded", in_uri)


def _write_per_problem(uri: str, counts: list[dict], ks: list[int]) -> None:
    # Written with our standard-library writer: the sandbox image has no polars.
    columns = [("problem", "string", [r["problem"] for r in counts]),
               ("language", "string", [r["language"] for r in counts]),
               ("n", "int64", [r["n"] for r in counts]),
               ("c", "int64", [r["c"] for r in counts])]
    columns += [(f"pass@{k}", "double", [r[f"pass@{k}"] for r in counts]) for k in ks]
    columns += [("timeouts", "int64", [r["statuses"].get(TIMEOUT, 0) for r in counts]),
                ("min_timeout_s", "double", [min(r["limits"], default=None) for r in counts]),
                ("max_timeout_s", "double", [max(r["limits"], default=None) for r in counts])]
    storage.write_if_changed(uri, parquet.write_table(columns))
