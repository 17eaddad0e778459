"""MultiPL-E completion folders: finding, sharding, reading and checking `<name>.json(.gz)` files,
and the `<name>.results.json.gz` files the executor writes beside them.

A results file has every key of its completions file plus `results`: one
{program, stdout, stderr, exit_code, status, timestamp} per completion, in order, so MultiPL-E's
own pass@k tooling reads it, plus `timeout` (the limit the program ran under; MultiPL-E's results
lack it, so it is not required of an earlier result). While a problem is still running, results that finished ahead of an
earlier completion wait in `multiplt_pending` ({index: result}); MultiPL-E ignores that key, and a
rerun picks them up, so a killed run loses only the programs that were in flight and the results
that finished since the file's last write (the executor writes a running problem's file every few
seconds: executor.SAVE_EVERY_S).
"""

from __future__ import annotations

import functools
import gzip
import json
import logging
import os
from typing import Callable

from multiplt import storage
from multiplt.errors import MultipltError
from multiplt.evaluation import run_folder

PENDING_KEY = "multiplt_pending"
REQUIRED = {"name": str, "language": str, "prompt": str, "tests": str, "completions": list}
RESULT_KEYS = ("program", "stdout", "stderr", "exit_code", "status", "timestamp")
LOG = logging.getLogger("multiplt.execution")


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
    """A completions file, checked: the fields the executor needs, with the right types, and a
    `name` that its file name (`<name>.json.gz`) repeats."""
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
    named = problem_name(uri)
    if named is not None and doc["name"] != named:  # results and score go by the file's name
        raise MultipltError(f"{uri}: field 'name' is {doc['name']!r} but the file name says {named!r}; "
                            f"a completions file is named <name>.json.gz after its problem")
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


#: whether a new result of a program replaces the one a results file already holds for it
#: (old, new) -> bool; otherwise the file's result stays
Supersedes = Callable[[dict, dict], bool]


def add_results(uri: str, problem: dict, results: list[dict | None], supersedes: Supersedes,
                source: str | None, lock_timeout: float | None = None) -> None:
    """Write `results` (results[i]: completion i's of `problem`, the completions file as this run
    read it, or None) merged into the results file as it is now, read again here. Two executes
    may write one file at once (an Airflow try that stalled beside its retry, two evaluations
    of one run folder), each from its own view: so a result the file holds for the same program
    stays (unless `supersedes` says the new one replaces it: a Timeout run again under a longer
    limit), this run's fill the rest, and the file never loses results to a writer that read it
    earlier or never (merged_results). A local folder holds the flock that generate's writes
    take (generation.folder.locked) for the read-merge-write; object storage has no lock, so
    there the file is written only if it is still the version read (a conditional write, else
    read, merged and written again). `source` is the problem's completions file, read again
    only where the results file holds more completions than `problem` (merged_results).
    `lock_timeout`: the longest wait for the local folder's lock (None: as long as it takes),
    then BlockingIOError, nothing written."""
    merge = functools.partial(merged_results, problem=problem, results=results,
                              supersedes=supersedes, source=source)
    path = storage.local_path(uri)
    if path is None:
        _add_results_if(uri, merge)
        return
    from multiplt.generation.folder import locked

    with locked(os.path.dirname(path), lock_timeout):
        write_results(uri, merge(_read_doc(uri)))


def merged_results(existing: dict | None, problem: dict, results: list[dict | None],
                   supersedes: Supersedes, source: str | None) -> dict:
    """The results file to write: for each completion, the result `existing` (the file as it is
    now, or None) holds for its program, else this run's (`results`; a result of another
    program than the completion's, e.g. of a completion edited since, is dropped). The file's
    completions are this run's `problem`'s, unless the file holds more of them and the problem's
    completions file (`source`, read again) still holds those too: another execute read the
    file after a generate added samples, and its results beyond this run's stay. Where the
    completions file holds fewer (cut after an execute), the file is cut to it."""
    theirs = _by_index(existing)
    base = existing if _grown(existing, problem, source) else problem
    merged: list[dict | None] = []
    for i, completion in enumerate(base["completions"]):
        prog = program(base, completion)
        old, new = theirs.get(i), results[i] if i < len(results) else None
        old = old if old is not None and old["program"] == prog else None
        new = new if new is not None and new["program"] == prog else None
        merged.append(new if old is None or new is not None and supersedes(old, new) else old)
    return results_doc(base, merged)


def _by_index(doc: dict | None) -> dict[int, dict]:
    """{completion index: result} of a results file's `results` and pending results."""
    if doc is None:
        return {}
    found = {int(i): r for i, r in (doc.get(PENDING_KEY) or {}).items()
             if str(i).isdecimal() and _is_result(r)}
    found.update((i, r) for i, r in enumerate(doc.get("results") or []) if _is_result(r))
    return found


def _grown(existing: dict | None, problem: dict, source: str | None) -> bool:
    """Whether the results file `existing` holds `problem`'s completions and more, all still in
    the completions file `source`: a generate added samples after this run read the problem."""
    if existing is None or source is None:
        return False
    theirs, ours = existing.get("completions"), problem["completions"]
    if not isinstance(theirs, list) or len(theirs) <= len(ours) or theirs[:len(ours)] != ours or \
            any(existing.get(k) != problem[k] for k in ("prompt", "tests")):
        return False
    try:
        now = read_problem(source)["completions"]
    except MultipltError:  # gone or broken since this run read it: this run's view stands
        return False
    return now[:len(theirs)] == theirs


def _read_doc(uri: str) -> dict | None:
    """A results file as merged_results takes it; None when there is none, or none it can use
    (unreadable, or not an object with a `results` list: its programs run again)."""
    try:
        return _results_doc_of(storage.read_bytes(uri), uri)
    except storage.NotFound:
        return None


def _results_doc_of(data: bytes, uri: str) -> dict | None:
    try:
        doc = json.loads(gzip.decompress(data) if uri.endswith(".gz") else data)
    except (OSError, EOFError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("results", []), list) \
            or not isinstance(doc.get(PENDING_KEY) or {}, dict):
        return None
    return doc


#: conditional writes of one results file to object storage before giving up (another writer
#: changed the file between each read and write)
WRITE_ATTEMPTS = 16


def _add_results_if(uri: str, merge: Callable[[dict | None], dict]) -> None:
    """add_results on object storage: read the file with its version tag, merge, and write it
    only if it is still that version, else again (storage.update). A server without
    conditional writes gets a plain write (warned once per folder)."""
    def merged(data: bytes | None) -> bytes:
        return _encoded(merge(None if data is None else _results_doc_of(data, uri)))

    storage.update(uri, merged, attempts=WRITE_ATTEMPTS, log=LOG,
                   unsupported=f"two executes into {uri.rsplit('/', 1)[0]} at once may cut each "
                               "other's results",
                   gave_up=f"{uri}: other writers changed the file on each of {WRITE_ATTEMPTS} "
                           "attempts to add results; run execute again later")


def write_results(uri: str, doc: dict) -> None:
    """Atomically (re)write a results file (add_results merges first). It is rewritten while its
    problem runs (every few seconds: executor.SAVE_EVERY_S), so it is compressed fast (level 1)
    rather than small, and flushed to disk only once complete: a killed run keeps every version
    (the page cache outlives the process); only a crash of the machine itself can lose the
    partial ones, whose programs the rerun then runs again."""
    storage.write_bytes(uri, _encoded(doc), durable=PENDING_KEY not in doc
                        and len(doc["results"]) == len(doc.get("completions", ())))


def _encoded(doc: dict) -> bytes:
    return gzip.compress(json.dumps(doc).encode("utf-8"), compresslevel=1, mtime=0)


def _is_result(r) -> bool:
    return isinstance(r, dict) and all(k in r for k in RESULT_KEYS)
