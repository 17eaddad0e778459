"""MultiPL-E completion folders: one `<name>.json.gz` per problem plus `_multiplt_run.yaml`.

A problem file holds name, language, prompt, tests, completions, stop_tokens, temperature,
top_p and max_tokens; `completions[i]` is sample i. Samples that finished ahead of an earlier
one wait under `multiplt_pending` ({index: completion}) until the gap is filled (the key is
dropped once empty, so a finished file is exactly MultiPL-E's, unless a larger --n's interrupted
run left a sample beyond this run's n: kept for a later run of that n; readers of `completions` ignore
it, and `execute` does not copy it into results), so an interrupted generate keeps every sample
that finished and its rerun draws only the others. Side files never end in .json/.json.gz.

Several generates may write one folder at once (two evaluate runs of one model, a cleared
Airflow task's zombie try beside its new try). So every write is a read-merge-write of what is
there at that moment: a problem file keeps every completion already in it and gains this run's
beyond them (add_samples), and the run record keeps the largest `n` and the union of the
selections (write_run). For a local folder each read-merge-write holds an flock on the folder
itself (`locked`); object storage has no lock, so there a problem file and the run record are
written only if each is still the version read (a conditional write, else read and merged
again), and `finish` writes `complete: true` only after reading every selected problem's file
again, after the record it writes over.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Callable

from multiplt import storage
from multiplt.errors import MultipltError
from multiplt.evaluation.run_folder import RUN_FILE, completions_name, read_run_record

# Fields of a problem file that must not change between runs writing into the same folder.
SAMPLING_FIELDS = ("temperature", "top_p", "max_tokens", "stop_tokens")
# Fields of the run record that must not change between runs writing into the same folder.
# benchmark_sha256: the problems of two benchmark files would be scored together, even where no
# problem of one has the name of one of the other (which check_same_problem compares).
RUN_IDENTITY = ("model", "revision", "tokenizer", "backend", "seed", "temperature", "top_p",
                "max_new_tokens", "lang", "benchmark_sha256")
#: run-record fields that a backend's describe() adds (generate's first check, made before the
#: backend, has none of them), compared when the run has one; a record without one had it off:
#: the openai backend's `stop_token_ids_sent` (its --tokenizer's special ids sent as vLLM's
#: stop_token_ids: completions end at the first special token)
DESCRIBED_IDENTITY = ("stop_token_ids_sent",)
#: run-record fields written only when the run has one, compared always (a record without one
#: had none, or was written before generate kept it; either way its tokenizer was loaded at
#: whatever its default branch was then, which is not a given revision): `tokenizer_revision`
#: (--tokenizer-revision, the revision a Hub --tokenizer was loaded at)
PINNED_IDENTITY = ("tokenizer_revision",)
#: what the model (or replay source) held when the folder's first samples were drawn: a Hub
#: model's commit (`commit:<sha>`), a local folder's or storage URI's content digest
#: (`sha256:<hex>`, model_source.content_digest), a replay source's (replay.read_replay); none
#: with the openai backend (the server's model is not ours to see). Written by the first run
#: that knows it and compared on every later one (_refuse_another_model): samples of two models
#: in one folder would be scored as one. A record without it (written before generate kept it)
#: is not refused for it: the next run that draws samples records its own.
MODEL_IDENTITY = "model_identity"
#: what a separate --tokenizer held when the folder's first samples were drawn, kept and compared
#: as MODEL_IDENTITY is: a Hub tokenizer's commit (`commit:<sha>`, the one it was loaded at:
#: `tokenizer_resolved_commit`), a local folder's or storage URI's tokenizer files' digest
#: (`sha256:<hex>`, model_source.tokenizer_digest). Only with --tokenizer and a backend that loads
#: it (transformers, vllm, openai: not replay); the model's own tokenizer is part of its
#: MODEL_IDENTITY. Another tokenizer tokenizes the prompts otherwise (and, with the openai
#: backend, ends completions at other special ids): its samples are another run's. A record
#: without it is not refused for it: the next run that draws samples records its own.
TOKENIZER_IDENTITY = "tokenizer_identity"
#: the run record's `selection` of a list of selected problems (the driver's, from its benchmark
#: file: run_folder.benchmark_selection)
Selection = Callable[[list[str]], str]
#: what generate's errors about the run record advise (score's: run_folder.SCORE_ADVICE)
MEND_ADVICE = "mend or remove it, or use another --out"
#: a problem file's samples that finished ahead of an earlier one: {str(index): completion}
#: (the key `multiplt execute` uses in a results file for results waiting likewise)
PENDING_KEY = "multiplt_pending"
LOG = logging.getLogger("multiplt.generation")


def unsafe_name(name) -> str | None:
    """Why `name` cannot name a problem file `<name>.json.gz` in a folder (None when it can): a
    problem name comes from a benchmark or dataset record, and must not reach outside the folder
    (a `/` or `..`) nor hide itself (a leading dot)."""
    if not isinstance(name, str) or not name:
        return "is empty or not a string"
    if "/" in name or "\\" in name or "\0" in name or name.startswith(".") or len(name) > 200:
        return "is not a plain file name (no /, \\, leading dot or NUL; at most 200 characters)"
    return None


def problem_uri(out: str, name: str) -> str:
    why = unsafe_name(name)
    if why:
        raise MultipltError(f"problem name {name!r} {why}")
    return storage.join(out, f"{name}.json.gz")


def read_problem(out: str, name: str) -> dict | None:
    uri = problem_uri(out, name)
    if not storage.exists(uri):
        return None
    return _checked_problem(uri, storage.read_json(uri))


def _checked_problem(uri: str, record) -> dict:
    if not isinstance(record, dict) or not isinstance(record.get("completions"), list):
        raise MultipltError(f"{uri} is not a MultiPL-E completion file (no completions list)")
    return record


def locked(out: str, timeout: float | None = None) -> contextlib.AbstractContextManager:
    """Hold an exclusive flock on the local folder `out` (made if missing) for a read-merge-write
    of its files: every generate writing the folder takes it, so none writes between another's
    read and write. The folder's own descriptor is locked, so no lock file appears in it (a
    foreign file to refuse_foreign and the tools that list the folder); the kernel drops the lock
    however the process ends, and the `with` drops it however the block or the wait ends (a
    Ctrl-C right after the lock was taken included: storage.FolderLock). Object storage (no
    local path) and a file system that refuses the lock (some NFS mounts) go unlocked: object
    storage's writes are conditional instead (add_samples, write_run); on such a mount the
    re-read before each write only narrows the window. `timeout`: None waits as long as it
    takes, else BlockingIOError past that many seconds. Not reentrant: a second `locked` of the
    same folder inside the first waits for ever (or its timeout)."""
    path = storage.local_path(out)
    return contextlib.nullcontext() if path is None else storage.FolderLock(path, timeout)


def check_same_problem(uri: str, existing: dict, wanted: dict, benchmark: str) -> None:
    """Raise when an existing problem file cannot take this run's samples: other sampling
    settings (check_same_sampling), or another language, prompt or tests than the benchmark's
    problem (what `execute` runs must be the benchmark's problem, or the folder would mix old and
    new problems)."""
    check_same_sampling(uri, existing, wanted)
    changed = [k for k in ("language", "prompt", "tests") if existing.get(k) != wanted[k]]
    if changed:
        raise MultipltError(f"{uri} has another {' and '.join(changed)} than problem "
                            f"{wanted['name']!r} of {benchmark} (the benchmark changed since "
                            "this folder was generated); use another --out folder")


def check_same_sampling(uri: str, existing: dict, wanted: dict) -> None:
    """Raise naming every sampling field that differs between an existing file and this run."""
    diffs = []
    for key in SAMPLING_FIELDS:
        old, new = existing.get(key), wanted.get(key)
        if key == "stop_tokens":
            old, new = list(old or []), list(new or [])
        if old != new:
            diffs.append(f"{key}: folder has {old!r}, this run asks for {new!r}")
    if diffs:
        raise MultipltError(f"{uri} was generated with different settings ({'; '.join(diffs)}); "
                            "use another --out folder")


def write_problem(out: str, record: dict) -> None:
    storage.write_json(problem_uri(out, record["name"]), record)


def pending_of(record: dict) -> dict[int, str]:
    """{index: completion} of a problem record's waiting samples (PENDING_KEY), each beyond its
    completions; none where the key is missing or malformed (those samples are drawn again), or
    where one would already be next in line (a file this code wrote never holds that)."""
    raw = record.get(PENDING_KEY)
    if not isinstance(raw, dict):
        return {}
    have = len(record["completions"])
    found = {int(i): t for i, t in raw.items()
             if isinstance(i, str) and i.isdecimal() and isinstance(t, str) and int(i) >= have}
    return {} if have in found else found


def with_pending(record: dict, pending: dict[int, str]) -> dict:
    """`record` with `pending` as its waiting samples (none: without the key)."""
    out = {k: v for k, v in record.items() if k != PENDING_KEY}
    if pending:
        out[PENDING_KEY] = {str(i): pending[i] for i in sorted(pending)}
    return out


def add_samples(out: str, record: dict, benchmark: str) -> tuple[list[str], dict[int, str], bool]:
    """Write `record` (this run's problem record, with its waiting samples under PENDING_KEY)
    merged with the problem's file as it is now, read again here, and return (the merged
    completions, the merged waiting samples, whether the file was written). Sample i is drawn
    from a seed of (seed, problem, i), so another generate's sample i is the one this run made
    for index i: the file's samples (completions and waiting) are all kept, this run's fill the
    indices the file lacks, and a waiting sample joins the completions once every earlier one is
    there; so a file never loses samples to a run that read it earlier (or never). Nothing is
    written when the file already holds all of this run's. The file is checked as at the start
    (check_same_problem): a generate of other settings that began at the same moment into a new
    folder is refused here. Call it under `locked(out)`."""
    uri = problem_uri(out, record["name"])
    if storage.local_path(uri) is None:
        return _add_samples_if(uri, record, benchmark)
    existing = read_problem(out, record["name"])
    merged = _merged(uri, existing, record, benchmark)
    if merged is not None:
        write_problem(out, with_pending({**record, "completions": merged[0]}, merged[1]))
        return merged[0], merged[1], True
    return list(existing["completions"]), pending_of(existing), False


def _merged(uri: str, existing: dict | None, record: dict,
            benchmark: str) -> tuple[list[str], dict[int, str]] | None:
    """The completions and waiting samples to write: the file's, and this run's where the file
    has none for an index; None when the file already holds all of this run's."""
    ours = {**pending_of(record), **dict(enumerate(record["completions"]))}
    if existing is None:
        theirs: dict[int, str] = {}
        had: tuple[list[str], dict[int, str]] = ([], {})
    else:
        check_same_problem(uri, existing, record, benchmark)
        had = (list(existing["completions"]), pending_of(existing))
        theirs = {**had[1], **dict(enumerate(had[0]))}
    if set(ours) <= set(theirs) and existing is not None:
        return None
    samples = {**ours, **theirs}  # the file's win: it is never changed, only added to
    completions: list[str] = []
    while len(completions) in samples:
        completions.append(samples[len(completions)])
    waiting = {i: t for i, t in samples.items() if i > len(completions)}
    if existing is not None and (completions, waiting) == had:
        return None
    return completions, waiting


#: conditional writes of one problem file to object storage before giving up (another writer
#: changed the file between each read and write)
WRITE_ATTEMPTS = 16


def _add_samples_if(uri: str, record: dict,
                        benchmark: str) -> tuple[list[str], dict[int, str], bool]:
    """add_samples on object storage, where `locked` holds nothing: the file is read with its
    version tag and written only if it is still that version, else read, merged and written
    again (storage.update). A server without conditional writes gets a plain write (warned once
    per folder)."""
    samples: list[tuple[list[str], dict[int, str]]] = []  # the last merge's: written, or the file's

    def merge(data: bytes | None) -> bytes | None:
        existing = None if data is None else _checked_problem(uri, storage.decode_json(uri, data))
        merged = _merged(uri, existing, record, benchmark)
        samples[:] = [(list(existing["completions"]), pending_of(existing)) if merged is None
                      else merged]
        return None if merged is None else storage.encode_json(
            uri, with_pending({**record, "completions": merged[0]}, merged[1]))

    unsupported = (f"two generates into {uri.rsplit('/', 1)[0]} at once may cut each other's "
                   "completions")
    written = storage.update(uri, merge, attempts=WRITE_ATTEMPTS, unsupported=unsupported, log=LOG,
                             gave_up=f"{uri}: other writers changed the file on each of {WRITE_ATTEMPTS} "
                                     "attempts to add completions; retry later")
    return samples[0][0], samples[0][1], written is not None


def read_run(out: str) -> dict | None:
    """The folder's run record, or None (run_folder.read_run_record, with generate's advice)."""
    return read_run_record(out, MEND_ADVICE)


def merge_run(out: str, run: dict, select: Selection | None = None) -> dict | None:
    """Check `run` against the folder's existing run record; return the record to write, or None
    when the existing one already says the same (a rerun writes nothing). A folder without a run
    record must hold no files (the run record is written before the first problem file, so any
    file there is someone else's: a foreign problem file would be executed and scored with the
    run's), and a local `out` must not be a file. The record's `problems` becomes the union of
    every run's selection, and its `selection` what `select` says of that union; a record from
    before generate kept the list starts it with the problem files already there (each one an
    earlier run's)."""
    from multiplt.storage.outputs import check_out, refuse_foreign

    check_out(out, flag=None)
    old = read_run(out)
    if old is None:
        # files there are another generate's when its run record is there by now: one begun
        # at the same moment writes the record before its first problem file
        refuse_foreign(out, lambda: read_run(out) is not None, flag=None)
        old = read_run(out)  # that record, checked and merged as any other
        if old is None:
            return run
    _refuse_another_run(out, old, run)
    merged = {**old, **run, "n": max(old.get("n") or 0, int(run.get("n") or 0))}
    if "problems" in run:
        had = old.get("problems")
        merged["problems"] = _union(problem_files(out) if had is None else had, run["problems"])
        if select is not None:
            merged["selection"] = select(merged["problems"])
    return None if merged == old else merged


def _refuse_another_run(out: str, old: dict, run: dict) -> None:
    """Raise naming every RUN_IDENTITY field the folder's record `old` has and `run` changes (a
    record without one, written before generate kept it, is not refused for it), and every
    PINNED_IDENTITY field the two differ in; else, when both have a MODEL_IDENTITY or a
    TOKENIZER_IDENTITY and it differs, _refuse_another_model's error."""
    diffs = [f"{k}: folder has {_shown(old, k)}, this run asks for {_shown(run, k)}"
             for k in RUN_IDENTITY if k in old and old.get(k) != run.get(k)]
    diffs += [f"{k}: folder has {_shown(old, k)}, this run asks for {_shown(run, k)}"
              for k in PINNED_IDENTITY if old and old.get(k) != run.get(k)]
    diffs += [f"{k}: folder has {bool(old.get(k))}, this run asks for {bool(run[k])}"
              for k in DESCRIBED_IDENTITY if old and k in run and bool(old.get(k)) != bool(run[k])]
    if diffs:
        raise MultipltError(f"{storage.join(out, RUN_FILE)} records a different run "
                            f"({'; '.join(diffs)}); use another --out folder")
    _refuse_another_model(out, old, run)


def _refuse_another_model(out: str, old: dict, run: dict) -> None:
    """Raise when the folder's record `old` and `run` both name a MODEL_IDENTITY and they differ:
    the model (or replay source) of the same name holds something else now (a local folder
    overwritten, a Hub branch moved, a replay file rewritten), and a resume would add its samples
    to the old one's; else likewise for a TOKENIZER_IDENTITY (a separate --tokenizer's files
    replaced, its Hub branch moved). The error names the folder, what its samples were made with
    and what the model (or tokenizer) is now."""
    was, now = old.get(MODEL_IDENTITY), run.get(MODEL_IDENTITY)
    if was and now and was != now:
        source = old.get("replay_source") or run.get("replay_source")
        what = (f"replay source {source}" if old.get("backend") == "replay" and source
                else f"model {old.get('model')}")
        raise MultipltError(f"{out} was generated from {what} at {was} ({MODEL_IDENTITY} in "
                            f"{RUN_FILE}), but it is now {now}: resuming would mix samples of two "
                            "models in one folder; use another --out folder, or restore what the "
                            "folder was made with")
    was, now = old.get(TOKENIZER_IDENTITY), run.get(TOKENIZER_IDENTITY)
    if was and now and was != now:
        raise MultipltError(f"{out} was generated with tokenizer {old.get('tokenizer')} at {was} "
                            f"({TOKENIZER_IDENTITY} in {RUN_FILE}), but it is now {now}: resuming "
                            "would mix samples of two tokenizers in one folder; use another --out "
                            "folder, or restore what the folder was made with")


def _shown(record: dict, key: str) -> str:
    """A run record's value as an error shows it: a benchmark's sha256 with the file it was read
    from, which says more to a reader than the hash."""
    shown = repr(record.get(key))
    if key == "benchmark_sha256" and record.get("benchmark"):
        shown += f" (of {record['benchmark']})"
    return shown


def problem_files(out: str) -> list[str]:
    """The problems with a completions file in the folder, in listing order."""
    return [name for name in (completions_name(storage.basename(u)) for u in storage.ls(out))
            if name is not None]


def _union(first: list[str], then: list[str]) -> list[str]:
    """`first`, then the names of `then` it lacks: the order in which problems were selected."""
    return list(dict.fromkeys([*first, *then]))


def write_run(out: str, run: dict, select: Selection | None = None) -> None:
    """Write the run record, `complete` and the `problems` list last (the short fields stay on
    top). The record in the folder now, read again here, is merged in: its `problems` united
    with this run's, `selection` made by `select` from that union (without `select`, a
    `selection` that the union outgrew is dropped: `results record` then derives it from the
    benchmark file), its `n` kept where larger (the record's n is the most any run asked for),
    and one of another model, benchmark, sampling or seed refused (merge_run's check). generate
    writes the record minutes after merge_run read it (the model loads in between), and another
    generate into the folder may have written it since. Call it under `locked(out)`: a local
    folder's record then cannot change between the read and the write; on object storage the
    write is conditional on the version read, else read and merged again (_update_run)."""
    _update_run(out, lambda now: _merged_run(out, now, run, select))


def _merged_run(out: str, now: dict, run: dict, select: Selection | None) -> dict:
    """The record write_run writes over the record `now` ({} when there is none)."""
    _refuse_another_run(out, now, run)
    record = {key: value for key, value in run.items() if key != "problems"}
    if now.get("n") is not None and "n" in record:
        record["n"] = max(now["n"], int(record["n"]))
    if "problems" in run:
        problems = _union(now.get("problems") or [], run["problems"])
        if select is not None:
            record["selection"] = select(problems)
        elif problems != (now.get("problems") or []):
            record.pop("selection", None)
        if "complete" in record:
            record["complete"] = record.pop("complete")
        record["problems"] = problems
    return record


def _update_run(out: str, make: Callable[[dict], dict | None]) -> None:
    """Write the run record `make` makes of the record there now (read_run; {} when there is
    none); None writes nothing. A local folder: read and written once (the caller holds
    `locked(out)`). Object storage: the record is written only if it is still the version read
    (storage.update), else read and `make` run again, so a record another generate wrote in
    between (its problems, its n, its `complete: false`) is never written over unread. `make`
    reads through read_run, the one parser of the record, which may read a version newer than
    the one `update` read: the write is conditional on the older one, so it then fails and is
    tried again. A server without conditional writes gets a plain write (warned once per
    folder)."""
    import yaml

    uri = storage.join(out, RUN_FILE)

    def encoded(record: dict) -> bytes:
        return yaml.safe_dump(record, sort_keys=False).encode("utf-8")

    if storage.local_path(uri) is not None:
        record = make(read_run(out) or {})
        if record is not None:
            storage.write_bytes(uri, encoded(record))
        return

    def merge(data: bytes | None) -> bytes | None:
        record = make({} if data is None else read_run(out) or {})
        return None if record is None else encoded(record)

    storage.update(uri, merge, attempts=WRITE_ATTEMPTS, log=LOG,
                   unsupported=f"two generates into {out} at once may lose one's problems from "
                               "the record",
                   gave_up=f"{uri}: other writers changed the run record on each of "
                           f"{WRITE_ATTEMPTS} attempts to write it; retry later")


def finish(out: str, problems: list[str], select: Selection | None = None) -> list[tuple[str, int, int]]:
    """Set the record's `complete` from the files: true only when every problem the record lists
    as selected (with `problems`, this run's selection) and every problem file in the folder
    holds at least the record's n completions, each file read again here, after the record;
    else false. Returns the short ones, (problem, completions, n), in the record's order; []
    when whole. Writes the record (as write_run, with `select`) only when `complete` changes or
    its `problems` lack some of `problems` (another generate's write without them). On object
    storage a record another generate wrote between the read and the write (more problems, a
    larger n) makes the files be read and `complete` decided again over it (_update_run). Call
    it under `locked(out)`."""
    from multiplt.evaluation.run_folder import completion_counts

    found: list[list[tuple[str, int, int]]] = [[]]

    def make(now: dict) -> dict | None:
        n = int(now.get("n") or 0)
        counts = completion_counts(out)
        selected = _union(_union(now.get("problems") or [], problems), list(counts))
        found[0] = short = [(name, counts.get(name, 0), n) for name in selected
                            if counts.get(name, 0) < n]
        whole = not short
        if now.get("complete") is whole and not set(problems) - set(now.get("problems") or []):
            return None
        return _merged_run(out, now, {**now, "complete": whole, "problems": problems}, select)

    _update_run(out, make)
    return found[0]
