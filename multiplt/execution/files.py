"""MultiPL-E completion folders: finding, sharding, reading and checking `<name>.json(.gz)` files,
and the `<name>.results.json.gz` files the executor writes beside them.

A results file has every key of its completions file plus `results`: one
{program, stdout, stderr, exit_code, status, timestamp} per completion, in order, so MultiPL-E's
own pass@k tooling reads it, plus `timeout` (the limit the program ran under; MultiPL-E's results
lack it, so it is not required of an earlier result). While a problem is still running, results that finished ahead of an
earlier completion wait in `multiplt_pending` ({index: result}); MultiPL-E ignores that key, and a
rerun picks them up, so a killed run loses only the programs that were in flight.
"""

from __future__ import annotations

import gzip
import json

from multiplt import storage
from multiplt.errors import MultipltError
from multiplt.evaluation import run_folder

PENDING_KEY = "multiplt_pending"
REQUIRED = {"name": str, "language": str, "prompt": str, "tests": str, "completions": list}
RESULT_KEYS = ("program", "stdout", "stderr", "exit_code", "status", "timestamp")


def problem_name(uri: str) -> str | None:
    """`HumanEval_0` for `.../HumanEval_0.json.gz` or `.json`; None for results and side files."""
    return run_folder.completions_name(storage.basename(uri))


def completion_files(in_uri: str) -> dict[str, str]:
    """{problem name: URI} for every completions file in the folder (not recursive)."""
    found: dict[str, str] = {}
    for uri in storage.ls(in_uri):
        name = problem_name(uri)
        if name is None:
            continue
        if name in found:
            raise MultipltError(f"{in_uri}: both {storage.basename(found[name])} and "
                                f"{storage.basename(uri)} hold problem {name}; keep one")
        found[name] = uri
    return found


#: the most shards (or dedup buckets) of one run: output names number them with 5 digits, so
#: that they sort, and the steps that wait for all of them list every number up to N
MAX_SHARDS = 100_000


def parse_shard(text: str | None, flag: str = "--shard") -> tuple[int, int] | None:
    """`K/N` (K counts from 0, as Airflow's map_index) -> (K, N); `flag` names the option in
    errors."""
    if text is None:
        return None
    try:
        k, n = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise MultipltError(f"{flag} must look like K/N (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= k < n:
        raise MultipltError(f"{flag} {text}: need N >= 1 and 0 <= K < N (K counts from 0)")
    if n > MAX_SHARDS:
        raise MultipltError(f"{flag} {text}: N is at most {MAX_SHARDS}")
    return k, n


def select_shard(names: list[str], shard: tuple[int, int] | None) -> list[str]:
    """The K-th of N round-robin shards of the sorted names (every name in exactly one shard)."""
    names = sorted(names)
    if shard is None:
        return names
    k, n = shard
    return names[k::n]


def read_problem(uri: str) -> dict:
    """A completions file, checked: the fields the executor needs, with the right types."""
    doc = storage.read_json(uri)
    if not isinstance(doc, dict):
        raise MultipltError(f"{uri}: expected a JSON object, got {type(doc).__name__}")
    for key, kind in REQUIRED.items():
        if key not in doc:
            raise MultipltError(f"{uri}: missing field {key!r}")
        if not isinstance(doc[key], kind):
            raise MultipltError(f"{uri}: field {key!r} should be {kind.__name__}, "
                                f"got {type(doc[key]).__name__}")
    bad = [i for i, c in enumerate(doc["completions"]) if not isinstance(c, str)]
    if bad:
        raise MultipltError(f"{uri}: completions[{bad[0]}] is not a string")
    return doc


def program(doc: dict, completion: str) -> str:
    """What runs: the prompt exactly as stored, the completion, a newline, the tests."""
    return doc["prompt"] + completion + "\n" + doc["tests"]


def results_uri(out_uri: str, name: str) -> str:
    return storage.join(out_uri, run_folder.results_file(name))


def read_results(uri: str) -> tuple[list[dict], dict[int, dict]]:
    """(results in order, pending results by index) of an earlier run; empty when there is none.
    An unreadable earlier results file is ignored (its programs simply run again)."""
    if not storage.exists(uri):
        return [], {}
    try:
        doc = storage.read_json(uri)
        results = [r for r in doc.get("results", []) if _is_result(r)]
        pending = {int(i): r for i, r in (doc.get(PENDING_KEY) or {}).items() if _is_result(r)}
    except (MultipltError, AttributeError, TypeError, ValueError):
        return [], {}
    return results, pending


def results_doc(problem: dict, results: list[dict | None]) -> dict:
    """The results file's content: the in-order prefix as `results`, the rest as pending."""
    doc = {k: v for k, v in problem.items() if k not in ("results", PENDING_KEY)}
    prefix = 0
    while prefix < len(results) and results[prefix] is not None:
        prefix += 1
    doc["results"] = results[:prefix]
    pending = {str(i): r for i, r in enumerate(results) if i >= prefix and r is not None}
    if pending:
        doc[PENDING_KEY] = pending
    return doc


def write_results(uri: str, doc: dict) -> None:
    """Atomically (re)write a results file. It is rewritten after every finished program, so it
    is compressed fast (level 1) rather than small, and flushed to disk only once complete: a
    killed run keeps every version (the page cache outlives the process); only a crash of the
    machine itself can lose the partial ones, whose programs the rerun then runs again."""
    storage.write_bytes(uri, gzip.compress(json.dumps(doc).encode("utf-8"), compresslevel=1,
                                           mtime=0), durable=PENDING_KEY not in doc
                        and len(doc["results"]) == len(doc.get("completions", ())))


def _is_result(r) -> bool:
    return isinstance(r, dict) and all(k in r for k in RESULT_KEYS)
