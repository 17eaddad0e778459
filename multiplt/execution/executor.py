"""`multiplt execute`: run every completion of a folder in the sandbox and record the outcomes.

Reads `<name>.json.gz` completion files (one shard of them), builds each program
(prompt + completion + "\n" + tests), and runs the distinct programs that have no result yet on a
pool of worker threads (one per core by default; each thread blocks on its sandboxed process).
A problem's results file is written (rewritten atomically) once all its results are in, and
while it runs at most every SAVE_EVERY_S seconds (a finished result waits at most that long), so
killing a run (SIGKILL) loses only the programs in flight and the results of the last few
seconds, and the rerun does only what is missing; an interrupted run (Ctrl-C, SIGTERM) kills
what runs and then writes the finished results that are not in its file yet (reported within
SETTLE_S of the sandbox's close) before it ends. Each
write merges into the file as it is then (files.add_results, under the folder's lock), so another
execute of the same folder (a stalled Airflow try beside its retry) never cuts its results back.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import os
import threading
import time
from collections import Counter

from multiplt import languages, storage
from multiplt.errors import MultipltError, PlatformError
from multiplt.execution import files, view
from multiplt.execution.preflight import preflight
from multiplt.execution.retry import run_with_retries
from multiplt.execution.sandbox import Limits, Sandbox, SandboxClosed
from multiplt.languages.base import EXCEPTION, TIMEOUT, Language
from multiplt.log import Funnel, progress

LOG = logging.getLogger("multiplt.execution")


@dataclasses.dataclass
class _Problem:
    name: str
    uri: str
    doc: dict
    results: list[dict | None]
    lang: Language
    source: str  # the completions file
    #: how long a write waits for the folder's lock (None: as long as it takes; past it,
    #: BlockingIOError and nothing written): an interrupted run's writes are bounded
    lock_timeout: float | None = None

    def complete(self) -> bool:
        """Whether every completion has its result (the file's last write for this run)."""
        return all(r is not None for r in self.results)

    def write(self) -> None:
        """Merge this run's results into the results file as it is now (files.add_results):
        another execute of the folder may have written it since this run read it."""
        files.add_results(self.uri, self.doc, self.results, self._supersedes, self.source,
                          lock_timeout=self.lock_timeout)

    def _supersedes(self, old: dict, new: dict) -> bool:
        """A new result replaces the file's for the same program only where that one would be
        run again under the new one's limit (a Timeout under a shorter limit: `reusable`)."""
        return not reusable(old, self.lang, new.get("timeout"))


@dataclasses.dataclass
class _Job:
    lang: Language
    program: str
    targets: list[tuple[_Problem, int]]


#: how often the main thread wakes while it waits for programs: a Ctrl-C or SIGTERM is raised
#: there only when it runs, and a wait without a timeout may not return to it until a program
#: ends (a C library's SIGINT handler installed with SA_RESTART, as polars installs one,
#: restarts the wait instead of interrupting it)
WAKE_S = 0.2


def results_in_order(futures):
    """Each future's result, in order, waiting in WAKE_S steps so that a Ctrl-C or SIGTERM is
    raised in the waiting thread at once (Future.result() without a timeout may not return to
    it until the future is done)."""
    for future in futures:
        while True:
            try:
                yield future.result(timeout=WAKE_S)
                break
            except concurrent.futures.TimeoutError:
                continue

#: how long a finished result of a problem that is still running may wait in memory before the
#: problem's results file is rewritten with it (a complete problem is written at once). Each write
#: rewrites the whole file (on S3: a GET and a PUT of it), so writing after every finished program
#: cost O(N^2) in a problem's N samples (43 s of one thread's time for N = 1000); a run killed
#: outright (SIGKILL, the OOM killer) loses at most this long's results, which the rerun runs again
SAVE_EVERY_S = 5.0

#: a CPU budget for the process (the local stage runtime sets it from a task's `cpus`)
CPUS_ENV = "MULTIPLT_CPUS"


def default_workers() -> int:
    """The worker count without --workers: every core this process may run on
    (sched_getaffinity), at most MULTIPLT_CPUS when that is set (a positive integer; an empty
    value counts as unset, anything else is an error naming it)."""
    from multiplt.env_setting import env_setting

    cores = len(os.sched_getaffinity(0))
    budget = env_setting(CPUS_ENV, int, lambda n: n >= 1, "a positive integer (the CPUs to use)")
    return cores if budget is None else min(budget, cores)


#: the longest --timeout, in seconds: one day per program is already far beyond any use, and a
#: much larger one (or infinity) overflows the system's wait
MAX_TIMEOUT = 24 * 3600


def check_options(workers: int | None, timeout: float | None) -> None:
    """MultipltError for a worker count below 1 or a timeout that is not a number of seconds in
    (0, MAX_TIMEOUT] (NaN and infinity included; None: the defaults, every core and the
    language's timeout)."""
    if workers is not None and workers < 1:
        raise MultipltError(f"--workers must be at least 1, got {workers}")
    if timeout is not None and not 0 < timeout <= MAX_TIMEOUT:  # NaN fails the comparison too
        raise MultipltError(f"--timeout must be positive and at most {MAX_TIMEOUT} seconds (one day), "
                            f"got {timeout}")


#: how an error names execute's input and output folders: the flags of `multiplt execute`
FLAGS = ("--in", "--out")


def execute(in_uri: str, out_uri: str | None = None, workers: int | None = None,
            timeout: float | None = None, shard: str | tuple[int, int] | None = None,
            unsafe_no_sandbox: bool = False, limits: Limits | None = None,
            allow_empty: bool = False, labels: tuple[str, str] = FLAGS,
            private: tuple[tuple[str, str | None], ...] = ()) -> dict:
    """Execute one shard of a completions folder; returns counts (also logged as funnels).
    `allow_empty`: a folder with no completion files (e.g. a translation shard in which no
    problem could be built) is nothing to do rather than an error. `labels`: how an error names
    the input and the output folder (a command that executes a folder of its own passes what its
    user knows the folder as, not flags the user never gave). `private`: more (name, URI) pairs
    of folders programs must not see besides the two (a command's whole --out, where other
    languages' and shards' completions and results lie; None entries are skipped)."""
    out_uri = out_uri or in_uri
    check_options(workers, timeout)
    workers = workers or default_workers()
    shard = files.parse_shard(shard) if isinstance(shard, (str, type(None))) else shard
    found = files.completion_files(in_uri)
    if not found and allow_empty:
        LOG.info("execute: no completion files in %s, nothing to do", in_uri)
        return {"problems": {}, "programs": {}, "statuses": {}, "statuses_total": {},
                "shard": list(shard) if shard else None, "sandbox": None, "rerun": {}}
    if not found:
        local = storage.local_path(in_uri)
        if local is not None and not os.path.exists(local):
            raise MultipltError(f"completions folder {in_uri} does not exist")
        if local is not None and not os.path.isdir(local):
            raise MultipltError(f"{in_uri} is a file, not a folder of completion files (<name>.json.gz)")
        raise MultipltError(f"{in_uri}: no completion files (<name>.json.gz) found")
    names = files.select_shard(list(found), shard)
    private = [] if unsafe_no_sandbox else private_folders(
        [(labels[0], in_uri), (labels[1], out_uri), *((n, u) for n, u in private if u)],
        "the run's completions and results")

    problem_funnel, program_funnel = Funnel("execute problems"), Funnel("execute programs")
    rerun: Counter[str] = Counter()
    problems: list[_Problem] = []
    jobs = _plan(names, found, out_uri, problem_funnel, program_funnel, timeout, rerun, problems)
    sandbox = Sandbox(limits, unsafe_no_sandbox, private=private)
    statuses: Counter[str] = Counter()
    mode = None
    try:
        if jobs:
            # Covered only where it exists. Never removed again: another run into the same new
            # folder may have covered it already, and its programs would fail without it.
            _make_folders(private)
            sandbox.check()
            mode = sandbox.mode
            LOG.info("sandbox: %s", mode)
            langs = sorted({j.lang for j in jobs}, key=lambda lang: lang.code)
            for lang in langs:
                sandbox.prepare(lang)
            pool = concurrent.futures.ThreadPoolExecutor(
                workers, thread_name_prefix="multiplt-exec", initializer=sandbox.enter_worker_thread)
            try:
                # The preflight's sandbox becomes one worker's; the others' sandboxes and
                # pre-loaded runtimes start meanwhile, on the other cores.
                for _ in range(min(workers, len(jobs)) - 1):
                    pool.submit(_warm_up, sandbox, langs)
                preflight(sandbox, langs, timeout)
                _run(jobs, sandbox, pool, timeout, statuses)
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown()
    finally:
        sandbox.close()
    program_funnel.keep(len(jobs))
    problem_funnel.log(LOG)
    program_funnel.log(LOG)
    if rerun:
        LOG.info("execute: run again (kept above): %s", ", ".join(f"{r}={n}" for r, n in rerun.items()))
    LOG.info("execute statuses: %s", ", ".join(f"{s}={n}" for s, n in statuses.most_common())
             or "nothing ran")
    # every completion's result of the shard's problems, earlier runs' included: what a
    # resumed run's `statuses` (only the programs it ran) add up to
    total = Counter(r["status"] for p in problems for r in p.results if r is not None)
    if total != statuses:
        LOG.info("execute statuses with earlier runs': %s",
                 ", ".join(f"{s}={n}" for s, n in total.most_common()) or "none")
    return {"problems": problem_funnel.as_dict(), "programs": program_funnel.as_dict(),
            "statuses": dict(statuses), "statuses_total": dict(total),
            "shard": list(shard) if shard else None, "sandbox": mode, "rerun": dict(rerun)}


def private_folders(named: list[tuple[str, str]], what: str) -> list[str]:
    """The local folders among `named` ((name, URI) pairs: a run's folders, which hold `what`,
    the data of other programs), which programs must not see (view.py covers them wherever they
    are); MultipltError naming the folder as `name` names it where one cannot be covered (`/`, a
    system folder, or one holding the runtimes)."""
    folders: list[str] = []
    for name, uri in named:
        local = storage.local_path(uri)
        if local is None or local in folders:
            continue
        why = view.unhideable(local)
        if why:
            raise MultipltError(f"{name} {uri}: programs must not see {what}, but the sandbox "
                                f"cannot hide this folder ({why}); use a folder of its own")
        folders.append(local)
    return folders


def _make_folders(paths: list[str]) -> None:
    """Make the folders that do not exist yet (the output folder, before the sandbox decides
    what programs see)."""
    for path in paths:
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise MultipltError(f"cannot make the output folder {path}: {exc.strerror}") from None


#: why an earlier result of the same program is run again, as the summary's `rerun` counts it
LONGER_LIMIT = "Timeout under a shorter limit"


def reusable(old: dict, lang: Language, timeout: float | None) -> bool:
    """Whether an earlier result of the same program stands under the limit `timeout` (None:
    the language's): a Timeout does not when the limit is now longer than the one it ran under
    (its `timeout`; a result without one, as MultiPL-E writes them, ran under the language's
    default limit, which is MultiPL-E's)."""
    if old["status"] != TIMEOUT:
        return True
    had = old.get("timeout")
    if not isinstance(had, (int, float)) or isinstance(had, bool):
        had = lang.timeout
    return (timeout or lang.timeout) <= had


def _plan(names, found, out_uri, problem_funnel, program_funnel, timeout=None,
          rerun: Counter | None = None, every: list[_Problem] | None = None) -> list[_Job]:
    """Read and check every input first (bad input fails before anything runs), reuse earlier
    results (by position, or any earlier result of the identical program) unless a longer limit
    may change them (`reusable`; counted in `rerun`), and fold identical programs into one
    job. `every` gets each problem with completions (its results: the jobs fill the rest)."""
    docs = [(name, files.read_problem(found[name])) for name in names]
    langs = {}
    for name, doc in docs:
        try:
            langs[name] = languages.get(doc["language"])
        except MultipltError as exc:
            raise MultipltError(f"{found[name]}: {exc}") from None
    problems, known = [], {}
    for name, doc in docs:
        if not doc["completions"]:
            problem_funnel.drop("no completions")
            continue
        uri = files.results_uri(out_uri, name)
        earlier, pending = files.read_results(uri)
        programs = [files.program(doc, c) for c in doc["completions"]]
        results: list[dict | None] = [None] * len(programs)
        for i, prog in enumerate(programs):
            old = earlier[i] if i < len(earlier) else pending.get(i)
            if old is not None and old["program"] == prog:
                if not reusable(old, langs[name], timeout):
                    if rerun is not None:
                        rerun[LONGER_LIMIT] += 1
                    continue
                results[i] = old
                known[(langs[name].code, prog)] = old
        problems.append((_Problem(name, uri, doc, results, langs[name], found[name]), programs, earlier))

    if every is not None:
        every.extend(problem for problem, _, _ in problems)
    jobs: dict[tuple[str, str], _Job] = {}
    for problem, programs, earlier in problems:
        code = langs[problem.name].code
        reused = sum(r is not None for r in problem.results)
        if reused:
            program_funnel.drop("done in an earlier run", reused)
        for i, prog in enumerate(programs):
            if problem.results[i] is None and (code, prog) in known:
                problem.results[i] = known[(code, prog)]
                program_funnel.drop("identical to another program")
        missing = [i for i, r in enumerate(problem.results) if r is None]
        if not missing:
            problem_funnel.drop("done in an earlier run")
            # complete now, but not yet so on disk: results of the pending file, or a result
            # taken from an identical program where the file holds another program's
            if len(earlier) != len(programs) or any(r is not e for r, e in zip(problem.results, earlier)):
                problem.write()
            continue
        problem_funnel.keep()
        for i in missing:
            key = (code, programs[i])
            if key in jobs:
                program_funnel.drop("identical to another program")
                jobs[key].targets.append((problem, i))
            else:
                jobs[key] = _Job(langs[problem.name], programs[i], [(problem, i)])
    return list(jobs.values())


def _warm_up(sandbox: Sandbox, langs: list[Language]) -> None:
    try:
        sandbox.warm_up(langs)
    except SandboxClosed:  # the run is stopping
        pass
    except PlatformError as exc:  # the worker starts its sandbox itself, and reports a failure
        LOG.info("starting a sandbox ahead of its programs failed: %s", exc)


#: how long an interrupted run waits, once its sandbox is closed, for the workers to report
#: the programs that had finished (the killed ones report at once, as SandboxClosed)
SETTLE_S = 2.0
#: how long an interrupted or failing run spends, in all, writing what finished: waiting for its
#: folder's lock (another execute of the folder holds it while it writes) and for the storage
#: (an S3 endpoint that stalls); past this, what is left unwritten the rerun runs again
SAVE_LOCK_WAIT_S = 10.0


def _run(jobs: list[_Job], sandbox: Sandbox, pool: concurrent.futures.ThreadPoolExecutor,
         timeout: float | None, statuses: Counter) -> None:
    """Run the jobs on the pool, the progress bar moving per finished job; write a problem's
    results file once its results are complete, and the other problems with results not yet
    written once the oldest of those has waited SAVE_EVERY_S (checked at every wake, WAKE_S).
    Interrupted (Ctrl-C, SIGTERM) or failing, it stops the pool, closes the sandbox (killing
    what runs), waits up to SETTLE_S for the workers to report what had finished, then writes
    every finished result not yet written (`_save_finished`), and raises: a program that
    finished before the sandbox closed is kept unless its worker reported it later than that,
    or its write did not end within SAVE_LOCK_WAIT_S (the folder's lock stayed taken, the storage
    did not answer) or failed; the rerun runs those again."""
    finished: list[tuple[_Job, dict | BaseException]] = []  # appended by the workers only
    arrived = threading.Event()
    handled = 0  # finished[:handled] are in their problems' results
    unwritten: dict[int, _Problem] = {}  # results in memory, not yet in the problem's file
    since: float | None = None  # when the oldest result of `unwritten` was recorded
    futures: list[concurrent.futures.Future] = []
    bar = progress(total=len(jobs), desc="execute", unit="prog")
    try:
        for job in jobs:  # in order: problems sorted, completions in order
            future = pool.submit(_run_reported, sandbox, job, timeout, finished, arrived)
            future.add_done_callback(_report_failure(job, finished, arrived))
            futures.append(future)
        while handled < len(jobs):
            # wakes to let a Ctrl-C or SIGTERM through; cleared before the list is read, so an
            # arrival after the read sets it again
            if arrived.wait(WAKE_S):
                arrived.clear()
                upto = len(finished)
                if upto > handled:
                    error = _record(finished[handled:upto], unwritten, statuses)
                    handled, count = upto, upto - handled
                    bar.update(count)
                    if error is not None:
                        raise error  # what finished is written on the way out (_save_finished)
                    if since is None and unwritten:
                        since = time.monotonic()
            if since is not None:
                _write(unwritten, every=time.monotonic() - since >= SAVE_EVERY_S)
                if not unwritten:
                    since = None
        _write(unwritten)  # nothing left by now: every problem is complete
    except BaseException:
        try:  # a second Ctrl-C here still writes what had finished
            pool.shutdown(wait=False, cancel_futures=True)  # nothing more starts
            sandbox.close()  # kills what runs: what has not finished by now never will
            # a cancelled future never runs (nor counts as done for wait() until a worker would
            # have taken it): only the others are waited for
            concurrent.futures.wait([f for f in futures if not f.cancelled()], timeout=SETTLE_S)
        finally:
            _save_finished(finished, handled, unwritten)
        raise
    finally:
        bar.close()


def _report_failure(job: _Job, finished: list, arrived: threading.Event):
    """A done callback for `job`'s future: a future that failed without running
    _run_reported (a worker thread that could not start: its initializer failed, the pool is
    broken and fails every job it still holds) reports its exception as the job's outcome, so
    that the main thread raises it rather than waiting for ever. A cancelled future (the run
    stopping) reports nothing."""
    def done(future: concurrent.futures.Future) -> None:
        if future.cancelled():
            return
        error = future.exception()  # None: _run_reported ran, and reported
        if error is not None:
            finished.append((job, error))
            arrived.set()
    return done


def _run_reported(sandbox: Sandbox, job: _Job, timeout: float | None,
                  finished: list, arrived: threading.Event) -> None:
    """_run_job on a worker thread, its result (or exception) appended to `finished`: a signal
    is raised only in the main thread, so a finished job is never lost between its end and the
    list, whenever the main thread is interrupted."""
    try:
        outcome = _run_job(sandbox, job, timeout)
    except BaseException as exc:  # noqa: BLE001 - raised by the main thread (_record)
        outcome = exc
    finished.append((job, outcome))
    arrived.set()


def _record(batch: list[tuple[_Job, dict | BaseException]], unwritten: dict[int, _Problem],
            statuses: Counter) -> BaseException | None:
    """Put the batch's results into their problems' results (`unwritten` gets those problems);
    the first job's exception, if any (raised once the others' results are written)."""
    error = None
    for job, outcome in batch:
        if isinstance(outcome, BaseException):
            error = error or outcome
            continue
        for problem, i in job.targets:
            problem.results[i] = outcome
            unwritten[id(problem)] = problem
            statuses[outcome["status"]] += 1
    return error


def _write(unwritten: dict[int, _Problem], every: bool = True) -> None:
    """Write each problem of `unwritten` (`every`: False, only those whose results are complete),
    taking it out only once its file is written (an interrupted write leaves it there for
    _save_finished; each write is atomic)."""
    for key, problem in list(unwritten.items()):
        if every or problem.complete():
            problem.write()
            del unwritten[key]


def _save_finished(finished: list, handled: int, unwritten: dict[int, _Problem]) -> None:
    """On the way out of an interrupted or failed _run: every finished result not yet written
    (recorded but unwritten, or reported since the last batch) merged into its problem's file,
    in the format of every other write (a problem with unfinished completions keeps the later
    results in `multiplt_pending`), so that the rerun runs only what had not finished. Results
    only: a program killed by the stopping run reports SandboxClosed, and one whose sandbox was
    killed by a signal the run did not send a platform failure (runners.py).

    The writes take SAVE_LOCK_WAIT_S in all, however they wait (the folder's lock, or an S3
    endpoint that stalls: they run on a thread of their own, left behind when time is up), and
    stop at the first write that fails (the same folder and store: the next would fail alike,
    each after as long): one warning then says how many problems' results were left unwritten
    and why; nothing is raised: the run ends with what stopped it (the interrupted exit status,
    or the failure), and the rerun runs those problems' programs again."""
    _record(finished[handled:], unwritten, Counter())  # an interruption's statuses: not counted
    problems = list(unwritten.values())
    if not problems:
        return
    LOG.info("execute: stopping; writing the finished results of %d problem(s)", len(problems))
    deadline = time.monotonic() + SAVE_LOCK_WAIT_S
    state: dict = {"written": 0, "failed": None, "late": False}
    done = threading.Event()

    def save() -> None:
        try:
            for problem in problems:
                left = deadline - time.monotonic()
                if left <= 0 or state["late"]:
                    return
                problem.lock_timeout = left
                try:
                    problem.write()
                except BaseException as exc:  # noqa: BLE001 - logged by the waiting thread
                    state["failed"] = (problem, exc)
                    return
                state["written"] += 1
        finally:
            done.set()

    threading.Thread(target=save, name="multiplt-exec-save", daemon=True).start()
    try:  # in WAKE_S steps, as results_in_order waits: a second Ctrl-C still gets through
        while not done.wait(min(WAKE_S, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                break
    finally:
        state["late"] = True  # the thread, if still writing, starts no further write
    written, failed = state["written"], state["failed"]
    if failed is not None:
        problem, exc = failed
        why = (f"its folder stayed locked for {SAVE_LOCK_WAIT_S:g} s"
               if isinstance(exc, BlockingIOError) else str(exc) or type(exc).__name__)
    elif written < len(problems):
        problem = problems[written]
        why = (f"the write did not end within {SAVE_LOCK_WAIT_S:g} s (its folder stayed locked, "
               f"or the storage did not answer)")
    else:
        return
    left = len(problems) - written
    LOG.warning("execute: the finished results of %d problem(s) were left unwritten (the rerun "
                "runs them again): could not write those of problem %s: %s",
                left, problem.name, why)


def _run_job(sandbox: Sandbox, job: _Job, timeout: float | None) -> dict:
    """One program's result record (with the wall-clock limit it ran under); platform failures
    are retried and never recorded."""
    limit = timeout or job.lang.timeout
    finished = run_with_retries(sandbox, job.lang, job.program, limit)
    # killed for holding more memory than Limits.memory: a runtime error of the program, as a
    # MemoryError past the address-space limit is (its stderr ends with the sandbox's line)
    status = TIMEOUT if finished.timed_out else EXCEPTION if finished.memory_exceeded else \
        job.lang.classify(finished.exit_code, finished.stdout, finished.stderr)
    return {"program": job.program, "stdout": finished.stdout, "stderr": finished.stderr,
            "exit_code": finished.exit_code, "status": status, "timestamp": int(time.time()),
            "timeout": limit}
