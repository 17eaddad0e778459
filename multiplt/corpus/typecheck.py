"""`type_error`: Pyright's engine (basedpyright from PyPI, which brings its own Node) in
`standard` mode over batches of files, each `context + content` in a file named by its sha1. A function is
dropped for any error Pyright reports in its own lines; errors inside its context lines and
warnings are ignored (MultiPL-T: 250 files a batch, drop on >= 1 error). Imports resolve against
the interpreter running this command. Batches run in parallel threads (one Pyright process each).
With a `saved` folder each finished batch's verdicts are written there (named by a hash of its
rows), and a rerun after an interruption checks only the batches not found there.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time

from multiplt.corpus.blocks import Block, drop
from multiplt.errors import MultipltError, PlatformError
from multiplt.execution import tempdirs

LOG = logging.getLogger("multiplt.corpus")

CONFIG = {"typeCheckingMode": "standard", "reportMissingModuleSource": "none"}


def pyright_command() -> list[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "basedpyright")
    if os.path.exists(exe):
        return [exe]
    found = shutil.which("basedpyright")
    if found:
        return [found]
    raise PlatformError("type checking needs basedpyright (pip install 'multiplt[corpus]')")


def check_batch(rows: list[dict], timeout: float, command: list[str]) -> dict[str, str]:
    """{id: first error message} of the rows Pyright finds an error in (its own lines). A batch
    that runs past `timeout` (a loaded machine, or one pathological file) is halved and each
    half retried; only a single file that still times out is dropped for it."""
    with tempdirs.Owned("multiplt-pyright-") as tmp:  # swept by a later run if this one is killed
        starts = {}
        for number, row in enumerate(rows):
            name = f"f{number:04d}_{row['sha1'][:12]}.py"
            context = row["context"]
            text = context + ("\n\n" if context else "") + row["content"]
            starts[name] = (row["id"], context.count("\n") + (2 if context else 0))
            with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
                f.write(text)
        config = {**CONFIG, "pythonPath": sys.executable, "include": ["."]}
        with open(os.path.join(tmp, "pyrightconfig.json"), "w") as f:
            json.dump(config, f)
        try:
            proc = subprocess.run([*command, "--outputjson", "-p", tmp], cwd=tmp, capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc = None
    if proc is None:
        if len(rows) == 1:
            return {rows[0]["id"]: f"pyright timed out after {timeout:.0f} s on this file alone"}
        half = len(rows) // 2
        return {**check_batch(rows[:half], timeout, command), **check_batch(rows[half:], timeout, command)}
    return errors_of(proc, starts)


def errors_of(proc: subprocess.CompletedProcess, starts: dict) -> dict[str, str]:
    """The first error in each file's own lines, from Pyright's JSON report."""
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise PlatformError(f"basedpyright gave no JSON report (exit {proc.returncode}): "
                            f"{(proc.stderr or proc.stdout)[-500:]}") from None
    errors: dict[str, str] = {}
    for diag in report.get("generalDiagnostics", []):
        if diag.get("severity") != "error":
            continue
        entry = starts.get(os.path.basename(diag.get("file", "")))
        if entry is None:
            continue
        row_id, first_line = entry
        line = diag.get("range", {}).get("start", {}).get("line", 0)  # 0-based
        if line >= first_line and row_id not in errors:
            rule = diag.get("rule") or "error"
            errors[row_id] = f"{rule}: {diag.get('message', '').splitlines()[0][:300]}"
    return errors


def _checker() -> str:
    """What decides a verdict besides the rows: the checker's version, its settings and the
    interpreter imports resolve against (verdicts saved under another are not reused)."""
    from importlib import metadata

    try:
        version = metadata.version("basedpyright")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return json.dumps([version, CONFIG, sys.executable, sys.version])


def batch_key(rows: list[dict], checker: str) -> str:
    """A name for one batch's verdicts: a hash of the checker (_checker) and of what Pyright
    sees of each row, in order."""
    digest = hashlib.sha256(checker.encode())
    for row in rows:
        digest.update(json.dumps([row["id"], row["sha1"], row["context"], row["content"]]).encode())
    return digest.hexdigest()[:32]


class TypeCheckFilter(Block):
    name, reason = "typecheck", "type_error"

    def __init__(self, batch: int = 250, workers: int = 1, timeout: float = 300.0, progress=None,
                 saved: str | None = None):
        super().__init__()
        if batch < 1:
            raise MultipltError("the type-check batch size must be at least 1")
        self.batch, self.workers, self.timeout, self.progress = batch, max(1, workers), timeout, progress
        self.saved = saved  # folder URI of finished batches' verdicts (None: keep nothing)

    def run(self, rows, excluded):
        from multiplt import storage

        start = time.perf_counter()
        command = pyright_command()
        batches = [rows[i:i + self.batch] for i in range(0, len(rows), self.batch)]
        errors: dict[str, str] = {}
        todo, checker = [], _checker()
        for rows_of in batches:
            key = batch_key(rows_of, checker)
            uri = storage.join(self.saved, f"{key}.json") if self.saved else None
            if uri and storage.exists(uri):
                errors.update(storage.read_json(uri))
            else:
                todo.append((uri, rows_of))
        if len(todo) < len(batches):
            LOG.info("type check: %d of %d batches already checked by an interrupted run",
                     len(batches) - len(todo), len(batches))
            if self.progress:
                self.progress(len(batches) - len(todo), len(batches))
        with concurrent.futures.ThreadPoolExecutor(self.workers) as pool:
            futures = {pool.submit(check_batch, b, self.timeout, command): uri for uri, b in todo}
            for future in concurrent.futures.as_completed(futures):
                found = future.result()
                if futures[future]:
                    storage.write_json(futures[future], found)
                errors.update(found)
                if self.progress:
                    self.progress(1, len(batches))
        kept = []
        for row in rows:
            if row["id"] in errors:
                excluded.append(drop(row, self.reason, errors[row["id"]]))
            else:
                kept.append(row)
        self.count(len(rows), len(kept), time.perf_counter() - start)
        return kept
