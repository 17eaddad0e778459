"""`replay`: completions read back from existing files instead of a model.

The source is a folder of MultiPL-E completion files (`<name>.json.gz` or `<name>.json` with a
`completions` list) or a JSONL file of `{"name", "completion"}` rows (several rows per name give
samples 0, 1, ...; a `completions` list per row also works). Sample i of a problem is the i-th
completion of that problem in the source, verbatim. Used to re-score published completions,
and by tests to drive the pipeline with known answers.

What the source holds is named by a digest of the bytes the completions were read from
(read_replay): a run folder records it as its `model_identity`, so a resume from a source
rewritten since is refused (driver.generate).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
from typing import Iterator

from multiplt import storage
from multiplt.errors import MultipltError
from multiplt.evaluation import run_folder
from multiplt.generation.base import Backend, Description, Request, Sampling


def _checked(where: str, name, comps) -> list[str]:
    """The completions of one source row or file, or a MultipltError naming what is wrong."""
    if not isinstance(name, str) or not name:
        raise MultipltError(f"{where}: name must be a non-empty string, got {name!r}")
    if not isinstance(comps, list) or not all(isinstance(c, str) for c in comps):
        raise MultipltError(f"{where}: completions must be strings")
    return comps


def load_replay(source: str) -> dict[str, list[str]]:
    """The completions of each problem of the replay source `source` (read_replay)."""
    return read_replay(source)[0]


def _jsonl_rows(uri: str, data: bytes) -> list[dict]:
    """The JSON objects of the JSONL file `uri` whose stored bytes are `data` (gunzipped for a .gz
    name), with storage.read_jsonl's errors."""
    if uri.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise MultipltError(f"{uri} is not valid gzip: {exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MultipltError(f"{uri} is not UTF-8 text: {exc}") from None
    return [storage.jsonl_object(uri, number, line) for number, line in storage.jsonl_lines(text)]


def read_replay(source: str) -> tuple[dict[str, list[str]], str]:
    """(the completions of each problem of `source`, `sha256:<hex>` of what they were read from):
    of a JSONL file, the sha256 of its bytes as stored; of a folder, the sha256 of the JSON list
    [file name, sha256 of its bytes] of each completion file, in listing order (its other files,
    a run record or results files, are no part of it). Each file is read once: the digest is of
    the bytes the completions came from."""
    if not storage.exists(source):
        raise MultipltError(f"replay source {source} does not exist")
    out: dict[str, list[str]] = {}
    if source.endswith((".jsonl", ".jsonl.gz")):
        data = storage.read_bytes(source)
        for i, row in enumerate(_jsonl_rows(source, data)):
            where = f"replay source {source} record {i + 1}"
            if "name" not in row or not ("completion" in row or "completions" in row):
                raise MultipltError(f"{where} needs name and completion")
            comps = row["completions"] if "completions" in row else [row["completion"]]
            comps = _checked(where, row["name"], comps)
            out.setdefault(row["name"], []).extend(comps)
        return out, "sha256:" + hashlib.sha256(data).hexdigest()
    files = []
    for uri in storage.ls(source):
        if run_folder.completions_name(storage.basename(uri)) is None:
            continue
        data = storage.read_bytes(uri)
        files.append([storage.basename(uri), hashlib.sha256(data).hexdigest()])
        record = storage.decode_json(uri, data)
        if not isinstance(record, dict) or "name" not in record or not isinstance(
                record.get("completions"), list):
            raise MultipltError(f"replay source {uri} is not a MultiPL-E completion file")
        comps = _checked(f"replay source {uri}", record["name"], record["completions"])
        out.setdefault(record["name"], []).extend(comps)
    if not out:
        raise MultipltError(f"replay source {source} holds no completion files or rows")
    return out, "sha256:" + hashlib.sha256(json.dumps(files).encode()).hexdigest()


def replay_name(source: str) -> str:
    """The name of a replay source: its file or folder name, cut at a per-language source's
    `{lang}` without the separator before it (`replay-{lang}.jsonl`, `replay/{lang}.jsonl`:
    `replay`), "replay" when nothing is left. What `translate` records as the model of a replay
    run without --model."""
    name = storage.basename(source or "replay")
    if "{" in name:
        name = name.split("{")[0].rstrip("-_. ")
    return name or "replay"


def replay_label(source: str) -> str:
    """The model that `generate` and `evaluate` record, and name run folders by, for a replay run
    without --model: replay_name with `_s<first 8 hex digits of the sha256 of the source>` (a
    local path made absolute, a URI as given; `{lang}` kept), as benchmark sources are named:
    two sources of one name (`a/{lang}.jsonl`, `b/{lang}.jsonl`) get their own run folders
    instead of one scored for the other. A local path is named by its absolute path however
    spelled (`file://`, a trailing `/`); `generate` keeps the label of a folder made from the
    same source content (recorded_label)."""
    import os

    where = source.rstrip("/") or source
    if where.startswith("file://"):  # a local file, however spelled
        where = where[len("file://"):]
    if "://" not in where:
        where = os.path.abspath(os.path.expanduser(where))
    return f"{replay_name(source)}_s{hashlib.sha256(where.encode()).hexdigest()[:8]}"


def recorded_label(out: str, source: str) -> str | None:
    """The model that the run folder `out` records for a replay run whose source held what
    `source` holds now (the same `model_identity`), else None: a rerun of that folder keeps its
    label however the source is spelled now (a `file://` URI for a path, the tree moved), and so
    does a folder labelled before replay_label added its hash."""
    from multiplt.generation import folder

    record = folder.read_run(out) or {}
    if (record.get("backend") != "replay" or not record.get(folder.MODEL_IDENTITY)
            or not record.get("model") or not storage.exists(source)):
        return None
    return record["model"] if read_replay(source)[1] == record[folder.MODEL_IDENTITY] else None


@dataclasses.dataclass(frozen=True)
class ReplayDescription(Description):
    """The replay backend's description: also `model_identity`, the digest of the source's
    completions (read_replay), which a run folder keeps and compares on every later run."""

    model_identity: str | None = None


class ReplayBackend(Backend):
    name = "replay"

    def __init__(self, source: str, batch_size: int = 16):
        self.source = source
        self.completions, self.identity = read_replay(source)
        self.batch_size = max(1, batch_size)

    @classmethod
    def from_options(cls, replay_source=None, batch_size=16, **_):
        if not replay_source:
            raise MultipltError("the replay backend needs --replay-source (a completion folder or JSONL)")
        return cls(replay_source, batch_size)

    def describe(self) -> Description:
        return ReplayDescription(replay_source=self.source, model_identity=self.identity)

    def generate(self, requests: list[Request], sampling: Sampling) -> Iterator[list[tuple[Request, str]]]:
        short = sorted({r.problem for r in requests
                        if len(self.completions.get(r.problem, [])) <= r.index})
        if short:
            raise MultipltError(f"replay source {self.source} has too few completions for: "
                                + ", ".join(short[:10]) + (" ..." if len(short) > 10 else ""))
        for start in range(0, len(requests), self.batch_size):
            batch = requests[start: start + self.batch_size]
            yield [(r, self.completions[r.problem][r.index]) for r in batch]
