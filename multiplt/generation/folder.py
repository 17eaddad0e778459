"""MultiPL-E completion folders: one `<name>.json.gz` per problem plus `_multiplt_run.yaml`.

A problem file holds name, language, prompt, tests, completions, stop_tokens, temperature,
top_p and max_tokens; `completions[i]` is sample i. Side files never end in .json/.json.gz.
"""

from __future__ import annotations

from multiplt import storage
from multiplt.errors import MultipltError
from multiplt.evaluation.run_folder import RUN_FILE, completions_name, read_run_record

# Fields of a problem file that must not change between runs writing into the same folder.
SAMPLING_FIELDS = ("temperature", "top_p", "max_tokens", "stop_tokens")
# Fields of the run record that must not change between runs writing into the same folder.
RUN_IDENTITY = ("model", "revision", "tokenizer", "backend", "seed", "temperature", "top_p",
                "max_new_tokens", "lang")
#: what generate's errors about the run record advise (score's: run_folder.SCORE_ADVICE)
MEND_ADVICE = "mend or remove it, or use another --out"


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
    record = storage.read_json(uri)
    if not isinstance(record, dict) or not isinstance(record.get("completions"), list):
        raise MultipltError(f"{uri} is not a MultiPL-E completion file (no completions list)")
    return record


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


def read_run(out: str) -> dict | None:
    """The folder's run record, or None (run_folder.read_run_record, with generate's advice)."""
    return read_run_record(out, MEND_ADVICE)


def merge_run(out: str, run: dict) -> dict | None:
    """Check `run` against the folder's existing run record; return the record to write, or None
    when the existing one already says the same (a rerun writes nothing). A folder without a run
    record must hold no files (the run record is written before the first problem file, so any
    file there is someone else's: a foreign problem file would be executed and scored with the
    run's), and a local `out` must not be a file. The record's `problems` becomes the union of
    every run's selection; a record from before generate kept the list starts it with the
    problem files already there (each one an earlier run's)."""
    from multiplt.storage.outputs import check_out, refuse_foreign

    check_out(out, flag=None)
    old = read_run(out)
    if old is None:
        refuse_foreign(out, lambda: False, flag=None)
        return run
    diffs = [f"{k}: folder has {old.get(k)!r}, this run asks for {run.get(k)!r}"
             for k in RUN_IDENTITY if k in old and old.get(k) != run.get(k)]
    if diffs:
        raise MultipltError(f"{storage.join(out, RUN_FILE)} records a different run "
                            f"({'; '.join(diffs)}); use another --out folder")
    merged = {**old, **run, "n": max(old.get("n") or 0, int(run.get("n") or 0))}
    if "problems" in run:
        had = old.get("problems")
        merged["problems"] = _union(problem_files(out) if had is None else had, run["problems"])
    return None if merged == old else merged


def problem_files(out: str) -> list[str]:
    """The problems with a completions file in the folder, in listing order."""
    return [name for name in (completions_name(storage.basename(u)) for u in storage.ls(out))
            if name is not None]


def _union(first: list[str], then: list[str]) -> list[str]:
    """`first`, then the names of `then` it lacks: the order in which problems were selected."""
    return list(dict.fromkeys([*first, *then]))


def write_run(out: str, run: dict) -> None:
    """Write the run record, its `problems` list last (the short fields stay on top). The list
    is united with the record's there now, read again here: generate writes the record minutes
    after merge_run read it (the model loads in between), and another generate into the folder
    may have added its selection since. Storage has no atomic read-and-write, so two generates
    of different selections writing within the same instant could still lose one's names; the
    evaluate DAG's generates that share a folder share its selection too (docs/generation.md)."""
    import yaml

    record = {key: value for key, value in run.items() if key != "problems"}
    if "problems" in run:
        now = read_run(out) or {}
        record["problems"] = _union(now.get("problems") or [], run["problems"])
    storage.write_text(storage.join(out, RUN_FILE), yaml.safe_dump(record, sort_keys=False))
