"""`multiplt execute`: run every completion of a folder in the sandbox and record the outcomes.

Reads `<name>.json.gz` completion files (one shard of them) and runs each distinct program
(prompt + completion + "\n" + tests) that has no result yet on a pool of worker threads (one per
core by default; each thread blocks on its sandboxed process). Every file of the shard is read
and checked before anything runs, but a problem's programs are built only once the workers need
more work (`_Plan`), and let go once its results are written: memory holds the programs queued
and running, not the whole shard's (1,640 problems x 200 completions planned at once came to
about 1.4 GB). A problem's results file is written (rewritten atomically) once all its results
are in, and while it runs at most every SAVE_EVERY_S seconds (a finished result waits at most
that long), so killing a run (SIGKILL) loses only the programs in flight and the results of the
last few seconds, and the rerun does only what is missing; an interrupted run (Ctrl-C, SIGTERM)
kills what runs and then writes the finished results that are not in its file yet (reported
within SETTLE_S of the sandbox's close) before it ends. Each
write merges into the file as it is then (files.add_results, under the folder's lock), so another
execute of the same folder (a stalled Airflow try beside its retry) never cuts its results back.
"""

from __future__ import annotations

import array
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
    #: its result, once recorded (the targets have it then, and are let go: a program that
    #: problems planned later hold too keeps its job in the plan, which gives them this)
    result: dict | None = None


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
    statuses: Counter[str] = Counter()
    plan = _Plan(names, found, out_uri, timeout, statuses, problem_funnel, program_funnel, rerun,
                 ahead=max(PLAN_AHEAD, PLAN_PER_WORKER * workers))
    unwritten: dict[int, _Problem] = {}  # results in memory, not yet in the problem's file
    # The first programs, before any sandbox starts: where there are none (every result is
    # known), nothing starts at all.
    while not plan.done and len(plan.ready) < plan.ahead:
        plan.next(unwritten)
    sandbox = Sandbox(limits, unsafe_no_sandbox, private=private)
    mode = None
    try:
        if plan.ready:
            # Covered only where it exists. Never removed again: another run into the same new
            # folder may have covered it already, and its programs would fail without it.
            _make_folders(private)
            sandbox.check()
            mode = sandbox.mode
            LOG.info("sandbox: %s", mode)
            langs = plan.languages()
            for lang in langs:
                sandbox.prepare(lang)
            pool = concurrent.futures.ThreadPoolExecutor(
                workers, thread_name_prefix="multiplt-exec", initializer=sandbox.enter_worker_thread)
            try:
                # The preflight's sandbox becomes one worker's; the others' sandboxes and
                # pre-loaded runtimes start meanwhile, on the other cores. (Fewer programs
                # than workers are ready only where they are all the run has.)
                for _ in range(min(workers, len(plan.ready)) - 1):
                    pool.submit(_warm_up, sandbox, langs)
                preflight(sandbox, langs, timeout)
                _run(plan, unwritten, sandbox, pool, timeout, statuses)
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown()
    finally:
        sandbox.close()
    program_funnel.keep(plan.jobs)
    problem_funnel.log(LOG)
    program_funnel.log(LOG)
    if rerun:
        LOG.info("execute: run again (kept above): %s", ", ".join(f"{r}={n}" for r, n in rerun.items()))
    LOG.info("execute statuses: %s", ", ".join(f"{s}={n}" for s, n in statuses.most_common())
             or "nothing ran")
    # every completion's result of the shard's problems, earlier runs' included: what a
    # resumed run's `statuses` (only the programs it ran) add up to. Each result is either one
    # planning took (an earlier run's, an identical program's) or one of a program run now.
    total = plan.earlier + statuses
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


#: how many programs wait planned for the workers (at least PLAN_PER_WORKER per worker): the
#: next problem is planned (its files read, its programs built) only while fewer wait, so memory
#: holds about this many programs and their problems rather than the shard's, and the workers
#: still always find the next program ready while the main thread plans (a few milliseconds a
#: problem)
PLAN_AHEAD = 256
PLAN_PER_WORKER = 4


class _Plan:
    """The shard's problems, planned one at a time (`next`) while the workers run.

    Each completions file is read twice. First here, before anything runs: every file is checked
    (bad input fails before anything runs, and nothing is written), and each distinct program is
    kept only as its hash (8 bytes), which tells which programs more than one problem holds (the
    only ones whose planning carries state from problem to problem; usually there are none) and
    how many programs there are at most to run (the progress bar's total until every problem is
    planned). Then in `next`, which builds a problem's programs when the workers need them.

    Planned one at a time, problems get what one plan of the whole shard gave them: an earlier
    result is reused by position, or any earlier result of the identical program, the shard's
    last one (where other problems hold the program too, their earlier results of it are
    gathered here, before any problem is planned), unless a longer limit may change it
    (`reusable`; counted in `rerun`); identical programs run once, as one job (a problem planned
    after the program ran takes its result then)."""

    def __init__(self, names: list[str], found: dict[str, str], out_uri: str,
                 timeout: float | None, statuses: Counter, problem_funnel: Funnel,
                 program_funnel: Funnel, rerun: Counter, ahead: int):
        self._names, self._found, self._out_uri, self._timeout = names, found, out_uri, timeout
        self._statuses, self._rerun = statuses, rerun
        self._problem_funnel, self._program_funnel = problem_funnel, program_funnel
        #: how many jobs to keep ready or queued for the workers
        self.ahead = ahead
        #: jobs planned and not yet handed to the workers (`take`)
        self.ready: list[_Job] = []
        self.planned = 0  # names[:planned] are planned
        self.jobs = 0  # the programs to run, of the problems planned so far
        #: the statuses of the results planning took (earlier runs', identical programs')
        self.earlier: Counter[str] = Counter()
        self._languages: set[Language] = set()  # of the problems with completions
        self._job_languages: set[Language] = set()  # of the jobs planned

        hashes, starts = array.array("q"), []  # each problem's distinct programs' hashes
        for name in names:
            doc, lang = self._read(name)
            starts.append(len(hashes))
            if doc["completions"]:
                self._languages.add(lang)
                hashes.extend({hash((lang.code, files.program(doc, c)))
                               for c in doc["completions"]})
        starts.append(len(hashes))
        ordered = sorted(hashes)
        # A hash seen twice is of a program two problems hold (or of two programs that collide,
        # which costs only the bookkeeping below: programs are compared whole there).
        #: {hash: how many problems not planned yet hold it} of the programs problems share
        self._shared: dict[int, int] = {}
        for h, before in zip(ordered[1:], ordered):
            if h == before:
                self._shared[h] = self._shared.get(h, 1) + 1
        #: the distinct programs of the problems not planned yet (at most: the hashes')
        self._unplanned = len(ordered) - sum(n - 1 for n in self._shared.values())
        del ordered
        self._shared_seen: set[int] = set()  # of self._shared, those of a problem planned
        #: the reusable earlier results of programs that problems share, and their jobs: kept
        #: until the last problem holding the program is planned
        self._known: dict[tuple[str, str], dict] = {}
        self._shared_jobs: dict[tuple[str, str], _Job] = {}
        for k, name in enumerate(names):
            if self._shared and \
                    not self._shared.keys().isdisjoint(hashes[starts[k]:starts[k + 1]]):
                self._gather(name)

    @property
    def done(self) -> bool:
        """Whether every problem is planned."""
        return self.planned == len(self._names)

    def bound(self) -> int:
        """How many programs the run runs, at most: the jobs planned, and each distinct program
        of the problems not planned yet (the count is exact once every problem is planned, and
        exact meanwhile for a shard without earlier results)."""
        return self.jobs if self.done else self.jobs + max(0, self._unplanned)

    def describe(self) -> str:
        """How far the planning has come, for the progress bar, whose total is `bound` until
        every problem is planned."""
        return f"{self.planned}/{len(self._names)} problems (total: at most)"

    def languages(self) -> list[Language]:
        """The languages to prepare before the first program: those of the programs to run, once
        every problem is planned; else those of every problem with completions (a problem
        planned later may need any of them)."""
        return sorted(self._job_languages if self.done else self._languages, key=lambda l: l.code)

    def take(self) -> list[_Job]:
        """The jobs ready, which the caller hands to the workers."""
        ready, self.ready = self.ready, []
        return ready

    def next(self, unwritten: dict[int, _Problem]) -> None:
        """Plan the next problem: its programs to run join `ready` as jobs. A problem with every
        result known already runs nothing (its file is written now where it lacks some); one
        that takes the result of a program already run for an earlier problem goes into
        `unwritten`."""
        name = self._names[self.planned]
        self.planned += 1
        doc, lang = self._read(name)
        keys = [(lang.code, files.program(doc, c)) for c in doc["completions"]]
        if keys:
            self._plan(name, doc, lang, keys, unwritten)
        else:
            self._problem_funnel.drop("no completions")
        self._planned_programs(keys)

    def _plan(self, name: str, doc: dict, lang: Language, keys: list[tuple[str, str]],
              unwritten: dict[int, _Problem]) -> None:
        """`next` for a problem with completions (`keys`: their programs)."""
        uri = files.results_uri(self._out_uri, name)
        earlier, pending = files.read_results(uri)
        problem = _Problem(name, uri, doc, [None] * len(keys), lang, self._found[name])
        known: dict[tuple[str, str], dict] = {}  # this problem's earlier results by program
        for i, key in enumerate(keys):
            old = _earlier_result(earlier, pending, i, key[1])
            if old is None:
                continue
            if not reusable(old, lang, self._timeout):
                self._rerun[LONGER_LIMIT] += 1
                continue
            problem.results[i] = old
            known[key] = old
        reused = sum(r is not None for r in problem.results)
        if reused:
            self._program_funnel.drop("done in an earlier run", reused)
        missing = []
        for i, key in enumerate(keys):
            if problem.results[i] is None:
                old = (self._known if hash(key) in self._shared else known).get(key)
                if old is None:
                    missing.append(i)
                    continue
                problem.results[i] = old
                self._program_funnel.drop("identical to another program")
        self.earlier.update(r["status"] for r in problem.results if r is not None)
        if not missing:
            self._problem_funnel.drop("done in an earlier run")
            # complete now, but not yet so on disk: results of the pending file, or a result
            # taken from an identical program where the file holds another program's
            if len(earlier) != len(keys) or \
                    any(r is not e for r, e in zip(problem.results, earlier)):
                problem.write()
            return
        self._problem_funnel.keep()
        jobs: dict[tuple[str, str], _Job] = {}  # of programs only this problem holds
        for i in missing:
            key = keys[i]
            table = self._shared_jobs if hash(key) in self._shared else jobs
            job = table.get(key)
            if job is None:
                table[key] = job = _Job(lang, key[1], [(problem, i)])
                self.ready.append(job)
                self.jobs += 1
                self._job_languages.add(lang)
                continue
            self._program_funnel.drop("identical to another program")
            if job.result is None:
                job.targets.append((problem, i))
            else:  # it ran for a problem planned earlier: its result, counted as a target's
                problem.results[i] = job.result
                self._statuses[job.result["status"]] += 1
                unwritten[id(problem)] = problem

    def _read(self, name: str) -> tuple[dict, Language]:
        """A problem's completions file, checked, and its language."""
        doc = files.read_problem(self._found[name])
        try:
            return doc, languages.get(doc["language"])
        except MultipltError as exc:
            raise MultipltError(f"{self._found[name]}: {exc}") from None

    def _gather(self, name: str) -> None:
        """Keep the problem's reusable earlier results of the programs that other problems hold
        too (in shard order: a later problem's replaces an earlier one's)."""
        doc, lang = self._read(name)
        earlier, pending = files.read_results(files.results_uri(self._out_uri, name))
        for i, completion in enumerate(doc["completions"]):
            key = (lang.code, files.program(doc, completion))
            if hash(key) in self._shared:
                old = _earlier_result(earlier, pending, i, key[1])
                if old is not None and reusable(old, lang, self._timeout):
                    self._known[key] = old

    def _planned_programs(self, keys: list[tuple[str, str]]) -> None:
        """Take a planned problem's distinct programs off those not planned yet (`bound`), and
        let go of what is kept for a program problems share once the last of them is planned."""
        for key in set(keys):
            h = hash(key)
            left = self._shared.get(h)
            if left is None or h not in self._shared_seen:
                self._unplanned -= 1
            if left is None:
                continue
            self._shared_seen.add(h)
            if left > 1:
                self._shared[h] = left - 1
            else:  # no problem planned later holds it (a job still running keeps its targets)
                del self._shared[h]
                self._shared_seen.discard(h)
                self._known.pop(key, None)
                self._shared_jobs.pop(key, None)


def _earlier_result(earlier: list[dict], pending: dict[int, dict], i: int,
                    program: str) -> dict | None:
    """Completion i's result in its results file (in order, or pending) where it is of the same
    program (the completion was not edited since)."""
    old = earlier[i] if i < len(earlier) else pending.get(i)
    return old if old is not None and old["program"] == program else None


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


def _run(plan: _Plan, unwritten: dict[int, _Problem], sandbox: Sandbox,
         pool: concurrent.futures.ThreadPoolExecutor, timeout: float | None,
         statuses: Counter) -> None:
    """Run the plan's jobs on the pool, planning the next problem whenever fewer than
    `plan.ahead` jobs are queued or running, the progress bar moving per finished job; write a
    problem's results file once its results are complete, and the other problems of `unwritten`
    (results not yet written) once the oldest of those has waited SAVE_EVERY_S (checked at every
    wake, WAKE_S, and after each problem planned).
    Interrupted (Ctrl-C, SIGTERM) or failing, it stops the pool, closes the sandbox (killing
    what runs), waits up to SETTLE_S for the workers to report what had finished, then writes
    every finished result not yet written (`_save_finished`), and raises: a program that
    finished before the sandbox closed is kept unless its worker reported it later than that,
    or its write did not end within SAVE_LOCK_WAIT_S (the folder's lock stayed taken, the storage
    did not answer) or failed; the rerun runs those again."""
    # appended by the workers; this thread takes the outcomes out only once they are in their
    # problems' results, so that an interruption between the two still finds them here
    finished: list[tuple[_Job, dict | BaseException]] = []
    arrived = threading.Event()
    since: float | None = None  # when the oldest result of `unwritten` was recorded
    running: dict[int, concurrent.futures.Future] = {}  # id(job): submitted, outcome not recorded
    # The total is known once every problem is planned; until then it is a bound from above,
    # which the bar says (plan.describe), and it comes down as problems turn out done already.
    bar = progress(total=plan.bound(), desc="execute", unit="prog")
    shows_planning = not plan.done
    if shows_planning:
        _set_postfix(bar, plan.describe())
    try:
        while True:
            for job in plan.take():  # in order: problems sorted, completions in order
                future = pool.submit(_run_reported, sandbox, job, timeout, finished, arrived)
                future.add_done_callback(_report_failure(job, finished, arrived))
                running[id(job)] = future
            hungry = not plan.done and len(running) < plan.ahead
            if not hungry and not running:
                break  # every problem planned, every job's outcome recorded
            if hungry:  # one problem a turn: results are taken in and written meanwhile
                plan.next(unwritten)
                bar.total = plan.bound()
                if shows_planning:
                    _set_postfix(bar, "" if plan.done else plan.describe())
            # Wakes to let a Ctrl-C or SIGTERM through (no wait while the queue is short);
            # cleared before the list is read, so an arrival after the read sets it again.
            if arrived.wait(0 if hungry else WAKE_S):
                arrived.clear()
                upto = len(finished)
                if upto:
                    batch = finished[:upto]
                    error = _record(batch, unwritten, statuses)
                    # one step, beside the workers' appends; interrupted before it, the batch is
                    # recorded again on the way out, to the same effect
                    del finished[:upto]
                    for job, _ in batch:
                        running.pop(id(job), None)
                    bar.update(upto)
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
            concurrent.futures.wait([f for f in running.values() if not f.cancelled()],
                                    timeout=SETTLE_S)
        finally:
            _save_finished(finished, 0, unwritten)  # `finished` holds what is not taken in
        raise
    finally:
        bar.close()


def _set_postfix(bar, text: str) -> None:
    """Show `text` after the bar (a bar without postfixes, e.g. a test's, shows none)."""
    set_postfix = getattr(bar, "set_postfix", None)
    if set_postfix is not None:
        set_postfix(planned=text) if text else set_postfix()


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
        # its problems have it now: the job keeps none of them alive (recorded again, after an
        # interruption, it does nothing more)
        job.result, job.targets = outcome, []
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
    (recorded but unwritten, or reported since the last batch: finished[handled:]) merged into
    its problem's file, in the format of every other write (a problem with unfinished
    completions keeps the later results in `multiplt_pending`), so that the rerun runs only what
    had not finished. Results only: a program killed by the stopping run reports SandboxClosed,
    and one whose sandbox was killed by a signal the run did not send a platform failure
    (runners.py).

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
