"""`type_error`: Pyright's engine (basedpyright from PyPI, which brings its own Node) in
`standard` mode over batches of files, each `context + content` in a file named by its sha1. A function is
dropped for any error Pyright reports in its own lines; errors inside its context lines and
warnings are ignored (MultiPL-T: 250 files a batch, drop on >= 1 error). Imports resolve against
the interpreter running this command (given to Pyright as `--pythonpath`, whatever is on PATH).
Batches run in parallel threads (one Pyright process each: the basedpyright command is a Python
script whose child is node, and a timed-out or interrupted batch ends both; they stay in this
command's process group, so whoever kills that group, as Airflow does a task's, kills them too). With a `saved` folder each finished batch's verdicts are written there (named
by a hash of its rows) as soon as it finishes, and a rerun after an interruption checks only the
batches not found there. An interrupted run (Ctrl-C) ends the batches in flight and starts no
more.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
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


class Interrupted(Exception):
    """A batch ended by `Processes.stop`: it has no verdicts."""


class Processes:
    """The Pyright processes running now. A timeout or `stop` kills each with its descendants
    (_kill_tree: killing the basedpyright script alone would leave node checking on, holding its
    output pipe). They are not put in a session of their own: a signal to this command's process
    group (Ctrl-C at a terminal, Airflow ending a task) reaches them as well. After `stop` (an
    interrupted run) no process starts and the running ones are killed."""

    def __init__(self):
        self.lock = threading.Lock()
        self.live: set[subprocess.Popen] = set()
        self.stopped = False

    def run(self, argv: list[str], folder: str, timeout: float) -> subprocess.CompletedProcess | None:
        """Run `argv` in `folder`; None when it ran past `timeout` (it is killed)."""
        with self.lock:
            if self.stopped:
                raise Interrupted()
            proc = subprocess.Popen(argv, cwd=folder, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            self.live.add(proc)
        try:
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_tree(proc.pid)
                proc.communicate()  # every holder of the pipes is dead: they close
                return None
            except BaseException:
                _kill_tree(proc.pid)
                proc.wait()
                raise
        finally:
            with self.lock:
                self.live.discard(proc)
        if self.stopped:
            raise Interrupted()
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)

    def stop(self) -> None:
        with self.lock:
            self.stopped = True
            for proc in self.live:
                _kill_tree(proc.pid)


def _kill_tree(pid: int) -> None:
    """SIGKILL `pid` and every process below it. Each is stopped (SIGSTOP) as it is found, so
    none forks or exits while the tree is read (a stopped parent's children stay its own), then
    all are killed."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            os.kill(current, signal.SIGSTOP)
        except (ProcessLookupError, PermissionError):
            continue
        found.append(current)
        todo.extend(_children(current))
    for each in found:
        try:
            os.kill(each, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _children(pid: int) -> list[int]:
    """The pids whose parent is `pid` (from /proc/<pid>/stat's ppid field)."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            children.append(int(entry))
    return children


def check_batch(rows: list[dict], timeout: float, command: list[str],
                processes: Processes | None = None) -> dict[str, str]:
    """{id: first error message} of the rows Pyright finds an error in (its own lines). A batch
    that runs past `timeout` (a loaded machine, or one pathological file) is halved and each
    half retried; only a single file that still times out is dropped for it. `processes`: where
    the Pyright process is tracked (an interrupted run stops them all)."""
    processes = processes or Processes()
    with tempdirs.Owned("multiplt-pyright-") as tmp:  # swept by a later run if this one is killed
        starts = {}
        for number, row in enumerate(rows):
            name = f"f{number:04d}_{row['sha1'][:12]}.py"
            context = row["context"]
            text = context + ("\n\n" if context else "") + row["content"]
            starts[name] = (row["id"], context.count("\n") + (2 if context else 0))
            with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
                f.write(text)
        with open(os.path.join(tmp, "pyrightconfig.json"), "w") as f:
            json.dump({**CONFIG, "include": ["."]}, f)
        # Pyright has no `pythonPath` config setting: the interpreter goes on the command line
        proc = processes.run([*command, "--outputjson", "--pythonpath", sys.executable, "-p", tmp],
                             tmp, timeout)
    if proc is None:
        if len(rows) == 1:
            return {rows[0]["id"]: f"pyright timed out after {timeout:.0f} s on this file alone"}
        half = len(rows) // 2
        return {**check_batch(rows[:half], timeout, command, processes),
                **check_batch(rows[half:], timeout, command, processes)}
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
    interpreter imports resolve against, and how it is given (verdicts saved under another are
    not reused: those of a version that gave it in the config, which Pyright ignores, resolved
    imports against the first Python on PATH)."""
    from importlib import metadata

    try:
        version = metadata.version("basedpyright")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return json.dumps([version, CONFIG, "--pythonpath", sys.executable, sys.version])


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
        processes = Processes()

        def check_and_save(uri: str | None, rows_of: list[dict]) -> dict[str, str]:
            found = check_batch(rows_of, self.timeout, command, processes)
            if uri:  # saved at once: an interruption loses only the batches in flight
                storage.write_json(uri, found)
            return found

        pool = concurrent.futures.ThreadPoolExecutor(self.workers)
        try:
            futures = [pool.submit(check_and_save, uri, b) for uri, b in todo]
            for future in concurrent.futures.as_completed(futures):
                errors.update(future.result())
                if self.progress:
                    self.progress(1, len(batches))
        except BaseException:
            # Ctrl-C (or a failed batch): queued batches never start, running ones are killed
            pool.shutdown(wait=False, cancel_futures=True)
            processes.stop()
            raise
        pool.shutdown()
        kept = []
        for row in rows:
            if row["id"] in errors:
                excluded.append(drop(row, self.reason, errors[row["id"]]))
            else:
                kept.append(row)
        self.count(len(rows), len(kept), time.perf_counter() - start)
        return kept
