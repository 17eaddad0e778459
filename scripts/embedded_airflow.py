#!/usr/bin/env python3
"""Start the embedded Airflow and, optionally, run the platform's main job on it.

    scripts/embedded_airflow.py serve                  # start, print the UI address and login, wait
    scripts/embedded_airflow.py main-job --model DIR   # start, run the MultiPL-T chain with DIR
                                                       # (plugins/multiplt_airflow/chain_job.py),
                                                       # print funnels and pass@k, keep serving
    scripts/embedded_airflow.py main-job --model DIR --source tests/fixtures/corpus/planted \
        --exit-when-done
    scripts/embedded_airflow.py --check-only main-job ...  # check the arguments, start nothing


AIRFLOW_HOME defaults to <repo>/.airflow and the data directory to $MULTIPLT_DATA or <repo>/data
(both git-ignored); the port to 8080 when free, else a free one. Ctrl-C (or SIGTERM) stops every
component; while the main job is still running it first stops the job's runs and sets its
Variables back (a further Ctrl-C or SIGTERM waits until that is done; a third one stops at
once), and the exit code is 130 (143 after SIGTERM). A usage error is one line, exit 2; an
error of Airflow or of its API server is one line, exit 1.
Used by scripts/main.sh; the Python API is plugins/multiplt_airflow/embedded.py.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import http.client
import os
import signal
import socket
import sys
import threading
import time
import urllib.error
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))

from multiplt.errors import MultipltError  # noqa: E402
from multiplt_airflow import job_models  # noqa: E402
from multiplt_airflow.embedded import EmbeddedAirflow, free_port  # noqa: E402
from multiplt_airflow.rest import AirflowAPIError  # noqa: E402

def pick_port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            return free_port()


def installed_languages() -> list[str]:
    """Languages whose run-time binaries are installed where programs run: on the PATH of the
    execution sandbox (multiplt.execution.preflight.missing_binaries, what `multiplt execute`
    checks first; Julia is not packaged by Debian)."""
    from multiplt import languages
    from multiplt.execution import preflight

    return [code for code, lang in languages.LANGUAGES.items()
            if not preflight.missing_binaries(lang)]


def stage_runtime() -> str:
    """Where the embedded deployment runs its stages: [multiplt] runtime of the committed
    airflow.cfg, which every start renders (AIRFLOW__MULTIPLT__RUNTIME overrides it): `local`,
    on this machine, or `docker`, in the images (which have every runtime)."""
    import configparser

    from multiplt_airflow.embedded import TEMPLATE

    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(TEMPLATE)
    return (os.environ.get("AIRFLOW__MULTIPLT__RUNTIME")
            or cfg.get("multiplt", "runtime", fallback="local")).strip()


def local_languages() -> list[str] | None:
    """The languages the job's stages can run: the installed ones where they run on this
    machine, None (every one) in the docker runtime."""
    return installed_languages() if stage_runtime() == "local" else None


def job_languages(spec: str | None) -> list[str]:
    """--languages as language codes of the registry (a name such as `racket` gives its code;
    repeats are dropped), or every installed language without it. MultipltError for an unknown
    language or a list that names none."""
    from multiplt import languages

    if spec is None:
        return installed_languages()
    return languages.codes(spec, "--languages")


def _dag_params():
    """The Params of the chain DAGs that take the job's numbers (dags/multiplt_pipelines)."""
    if str(REPO / "dags") not in sys.path:
        sys.path.insert(0, str(REPO / "dags"))
    from multiplt_pipelines import corpus, params, testgen, translation

    return {"multiplt_corpus": corpus.CORPUS, "multiplt_testgen": testgen.PARAMS,
            "multiplt_translate": translation.PARAMS, "multiplt_evaluate": params.EVALUATE}


def check_job_args(args) -> None:
    """What the main job hands to the DAGs, checked before Airflow starts (MultipltError with
    one line naming the option otherwise): --languages against the language registry, --n,
    --max-new-tokens, --limit and --corpus-limit against the Params of every chain DAG that
    takes them, and --source as `multiplt corpus build --source` reads it. Where the stages run
    on this machine (`stage_runtime` local), a language of --languages must have its runtime
    installed (`installed_languages`): its execute step would fail otherwise, late."""
    import jsonschema

    from multiplt.corpus.sources import resolve

    langs = job_languages(args.languages)
    usable = local_languages() if args.languages is not None else None
    if usable is not None and any(code not in usable for code in langs):
        from multiplt import languages
        from multiplt.execution import preflight

        code = next(c for c in langs if c not in usable)
        lang = languages.LANGUAGES[code]
        raise MultipltError(
            f"--languages {args.languages}: {lang.name} ({code}) cannot run on this machine: "
            f"{', '.join(preflight.missing_binaries(lang))} not installed (not on PATH "
            f"{preflight.runtime_path()}); installed: {', '.join(usable) or 'none'}; "
            f"{preflight.INSTALL_HINT}")
    dags = _dag_params()
    numbers = (("--n", args.n, "n", ("multiplt_testgen", "multiplt_translate", "multiplt_evaluate")),
               ("--max-new-tokens", args.max_new_tokens, "max_new_tokens",
                ("multiplt_testgen", "multiplt_translate", "multiplt_evaluate")),
               ("--limit", args.limit, "limit", ("multiplt_evaluate",)),
               ("--corpus-limit", args.corpus_limit, "limit", ("multiplt_corpus",)))
    for flag, value, param, dag_ids in numbers:
        if value is None:
            continue
        for dag_id in dag_ids:
            try:
                jsonschema.validate(value, dags[dag_id][param])
            except jsonschema.ValidationError as exc:
                raise MultipltError(f"{flag} {value}: {exc.message} (Param {param} of "
                                    f"{dag_id})") from None
    try:
        resolve(args.source)
    except MultipltError:
        raise
    except Exception as exc:  # e.g. an object store that cannot be reached
        raise MultipltError(f"--source {args.source}: cannot read it "
                            f"({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]})") from None


def check_timeouts(args) -> None:
    """--start-timeout (and main-job's --timeout) must be a number of seconds above 0, checked
    before Airflow starts (MultipltError with one line naming the option otherwise): with 0 or
    less, Airflow would start, the runs be triggered, and the wait end at once, leaving them
    queued."""
    for flag, value in (("--start-timeout", args.start_timeout),
                        ("--timeout", getattr(args, "timeout", None))):
        if value is not None and not value > 0:  # `not >` also refuses nan
            raise MultipltError(f"{flag} {value:g}: must be more than 0 seconds")


def wait_for_ctrl_c(airflow: EmbeddedAirflow) -> None:
    print("Airflow keeps running; press Ctrl-C to stop it.", flush=True)
    try:
        while True:
            for name, proc in airflow.processes.items():
                if proc.poll() is not None:
                    print(f"airflow {name} exited ({proc.returncode}); see {airflow.log_dir}",
                          file=sys.stderr)
                    return
            time.sleep(2)
    except KeyboardInterrupt:
        print("\nstopping Airflow ...", flush=True)


def deployment_setting(airflow: EmbeddedAirflow, option: str) -> str:
    """A [multiplt] setting of the deployment (the environment overrides airflow.cfg)."""
    import configparser

    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(airflow.config_path)
    return os.environ.get(f"AIRFLOW__MULTIPLT__{option.upper()}") or cfg.get("multiplt", option)


def main_job(airflow: EmbeddedAirflow, args) -> int:
    """The chain: corpus -> testgen -> translate -> finetune -> evaluate -> publish (dry run).
    With no translation target among the languages (`--languages py`) translate and finetune
    stay paused and the chain stops after testgen (chain_job.paused_dags), the report says why.
    A Variable the REST API gives masked (***) is refused up front (exit 2, nothing changed):
    the job could not set it back; so is a queued run of a DAG whose Variable the job sets (it
    would read the job's settings when it starts: chain_job.queued_runs). However it ends, the
    Variables it set are set back to what they were before it (deleted where there was none),
    but one changed since by someone else; a job that does not end normally (Ctrl-C, SIGTERM,
    --timeout, an error of the REST API) first stops its own runs (chain_job.stop_runs), so
    that none resumes when Airflow starts again, and sets the chain DAGs' paused flags back
    (but those where a run would start on the job's outputs: they stay paused, with a line
    saying why)."""
    from multiplt_airflow import chain_job

    missing = [d for d in chain_job.CHAIN if not (REPO / "dags" / f"{d}.py").exists()]
    if missing:
        print(f"dags/{missing[0]}.py does not exist: Airflow is up, nothing to run.")
        return 0
    sys.path.insert(0, str(REPO / "dags"))
    from multiplt_pipelines.translation import SPLITS

    client = airflow.client
    langs = job_languages(args.languages)
    teacher = getattr(args, "teacher_generation", None) or {
        "backend": "transformers", "model": args.model, "api_base": None}
    publish_repo = getattr(args, "publish_repo", None)
    since = datetime.datetime.now(datetime.timezone.utc)
    stamp = since.strftime("%Y%m%dT%H%M%S")
    root = f"{deployment_setting(airflow, 'data_uri').rstrip('/')}/main_job/{stamp}"
    publish_dir = str(Path(airflow.data_dir) / "main_job" / stamp / "publish")
    folders = chain_job.stage_folders(root)
    targets = list(SPLITS)
    paused = chain_job.paused_dags(langs, targets)
    not_run = (chain_job.no_target_reason(langs, targets, local_languages()) if paused
               else None)
    variables = chain_job.chain_settings(
        model=args.model, languages=langs, targets=targets, root=root,
        publish_dir=publish_dir, n=args.n, max_new_tokens=args.max_new_tokens, limit=args.limit,
        teacher=teacher, publish_repo=publish_repo)
    job = chain_job.ChainJob(since, root, paused)
    paused_before: dict[str, bool] = {}
    saved: dict = {}
    ended_normally = False
    try:
        for dag_id in chain_job.CHAIN:
            paused_before[dag_id] = bool(client.wait_for_dag(dag_id).get("is_paused"))
        before = chain_job.save_variables(client, list(variables))
        masked = chain_job.masked_variables(before)
        if masked:  # the job could not set them back: refused, nothing changed
            print(f"main-job: Airflow Variable {', '.join(masked)} holds a value the REST API "
                  f"gives masked ({chain_job.MASK}), which the job could not set back when it "
                  f"ends: nothing changed (export it, delete it, run the job, import it again)",
                  file=sys.stderr, flush=True)
            ended_normally = True
            return 2
        queued = chain_job.queued_runs(client, list(variables))
        if queued:  # they would start with the job's settings: refused, nothing changed
            print(f"main-job: queued before the job, these runs would read the job's settings "
                  f"(their DAG's Airflow Variable) when they start: {_named(queued)}; nothing "
                  f"changed (unpause their DAG and let them run first, or mark them failed: "
                  f"PATCH /api/v2/dags/DAG_ID/dagRuns/RUN_ID {{\"state\": \"failed\"}})",
                  file=sys.stderr, flush=True)
            ended_normally = True
            return 2
        saved = before
        for key, value in variables.items():
            chain_job.set_variable(client, key, value)
        for dag_id in chain_job.CHAIN[1:]:  # Asset-triggered runs start only on unpaused DAGs
            client.set_paused(dag_id, dag_id in paused)
        rc = _run_chain(airflow, args, job, langs=langs, targets=targets, root=root,
                        folders=folders, publish_dir=publish_dir, publish_repo=publish_repo,
                        teacher=teacher, paused=paused, not_run=not_run)
        ended_normally = True
        return rc
    finally:
        _end_job(client, job, paused_before, saved, variables, stop=not ended_normally)


class Forced(KeyboardInterrupt):
    """The third Ctrl-C or SIGTERM while the job ends: it stops at once."""


#: how many Ctrl-C or SIGTERM while the job ends stop it at once
FORCE_AFTER = 3


@contextlib.contextmanager
def _signals_deferred():
    """Ctrl-C and SIGTERM wait while the job ends (its runs stopped, its paused flags and
    Variables set back: a second Ctrl-C would leave them half done); yields the list of the
    signals that came meanwhile. The FORCE_AFTER-th raises Forced (where Airflow's API server
    does not answer, each call waits for its timeout). Only in the main thread (where signal
    handlers are set)."""
    got: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield got
        return

    def defer(signum, frame):
        got.append(signum)
        if len(got) >= FORCE_AFTER:
            raise Forced
        if len(got) == 1:
            print("main-job: still ending the job (stopping its runs, setting its paused flags "
                  "and Variables back); it stops once that is done (a third Ctrl-C stops it at "
                  "once, leaving that half done)", file=sys.stderr, flush=True)

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in handlers:
        signal.signal(sig, defer)
    try:
        yield got
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def _named(runs) -> str:
    """(dag_id, run_id) pairs as the job's lines name them: "dag_id run_id, ..."."""
    return ", ".join(f"{dag_id} {run_id}" for dag_id, run_id in runs)


def _end_job(client, job, paused_before: dict[str, bool], saved: dict, job_set: dict,
             stop: bool) -> None:
    """What main_job does however it ends: with `stop` (it did not end normally) stop the job's
    own runs once it had started triggering them (chain_job.stop_runs) and set the DAGs' paused
    flags back as they were, but those stop_runs leaves paused (a run would start there on the
    job's outputs); then set back the Variables that still hold what the job set (`job_set`).
    Each step is made whatever became of the one before; a problem is one line on stderr. A
    Ctrl-C or SIGTERM meanwhile waits until this is done; the job's own outcome (exit code,
    exception) stands, and a job that had ended normally is then interrupted as it would have
    been."""
    from multiplt_airflow import chain_job

    def trouble(what: str, exc: BaseException) -> None:
        print(f"main-job: {what} ({chain_job._said(exc)})", file=sys.stderr, flush=True)

    interrupted = False
    with _signals_deferred() as signals:
        stopped = chain_job.Stopped()
        if stop and job.started:
            print("stopping the job's runs ...", flush=True)
            try:
                stopped = chain_job.stop_runs(client, job)
            except Forced:
                raise
            except KeyboardInterrupt:
                interrupted = True
                print("main-job: stopping the job's runs was interrupted", file=sys.stderr,
                      flush=True)
            except Exception as exc:
                trouble("could not stop the job's runs", exc)
        if stop:
            for dag_id, was_paused in paused_before.items():
                try:
                    client.set_paused(dag_id, was_paused or dag_id in stopped.held)
                except Forced:
                    raise
                except KeyboardInterrupt:
                    interrupted = True
                except Exception as exc:
                    trouble(f"could not set {dag_id}'s paused flag back "
                            f"({'paused' if was_paused else 'unpaused'})", exc)
        if stopped.ended:
            print(f"marked the job's unfinished runs failed (they do not resume when Airflow "
                  f"starts again): {_named(stopped.ended)}",
                  flush=True)
        if stopped.finished:
            print(f"ended on their own with success as they were marked failed: "
                  f"{_named(stopped.finished)}", flush=True)
        for line in stopped.errors:
            print(f"main-job: {line}", file=sys.stderr, flush=True)
        for dag_id, why in stopped.held.items():
            print(f"{dag_id} left paused: {why}", flush=True)
        if stopped.queued:
            print(f"Asset events queued since the job started were left (Airflow does not say "
                  f"whose they are): {'; '.join(stopped.queued)}; each starts a run of its DAG "
                  f"once that is unpaused (DELETE /api/v2/dags/DAG_ID/assets/queuedEvents drops "
                  f"them)", flush=True)
        if saved:
            try:
                outcome = chain_job.restore_variables(client, saved, job_set)
            except Forced:
                raise
            except KeyboardInterrupt:
                interrupted, outcome = True, {}
            back = [k for k in saved if outcome.get(k) in ("restored", "deleted", "unchanged")]
            deleted = [k for k in back if outcome[k] == "deleted"]
            if back:
                print(f"Airflow Variables {', '.join(back)} set back to what they were before "
                      f"the job" + (f" (deleted: {', '.join(deleted)})" if deleted else ""),
                      flush=True)
            for key in (k for k in saved if outcome.get(k) == "changed"):
                print(f"main-job: Airflow Variable {key} was changed while the job ran: left "
                      f"as it is now, not set back", file=sys.stderr, flush=True)
            left = [k for k in saved if outcome.get(k, "failed").startswith("failed")]
            for key in left:
                print(f"main-job: could not set Airflow Variable {key} back: it may still hold "
                      f"the job's settings ({outcome.get(key, 'failed: interrupted')[8:]})",
                      file=sys.stderr, flush=True)
    if stop:
        return  # the job's own exception goes on
    if signal.SIGTERM in signals:
        raise Terminated
    if signals or interrupted:
        raise KeyboardInterrupt


def _run_chain(airflow: EmbeddedAirflow, args, job, *, langs, targets, root, folders,
               publish_dir, publish_repo, teacher, paused, not_run) -> int:
    """Trigger the chain, follow it and print the report (main_job has set the Variables)."""
    from multiplt_airflow import chain_job, chain_report

    client = airflow.client
    corpus = {"source": args.source, "out": folders["corpus"], "shards": 1, "dedup_buckets": 1,
              "workers": 2}
    if args.corpus_limit:
        corpus["limit"] = args.corpus_limit
    translated = chain_job.translation_languages(langs, targets)
    print(f"chain on {args.model}: translation into {', '.join(translated) or 'none'}, "
          f"evaluation on {', '.join(langs)} (n={args.n}, max_new_tokens={args.max_new_tokens}); "
          f"corpus {args.source}; outputs under {root}", flush=True)
    print(f"teacher (tests, translations): {teacher['model']} ({teacher['backend']} backend"
          + (f", {teacher['api_base']}" if teacher.get("api_base") else "") + "); publishing to "
          + (f"the Hub: datasets and checkpoints to {publish_repo}" if publish_repo
             else f"{publish_dir} (dry run)"), flush=True)
    if not_run:
        print(f"the chain stops after testgen ({', '.join(paused)} left paused): {not_run}",
              flush=True)
    print(f"triggering multiplt_corpus: {airflow.base_url}/dags/multiplt_corpus", flush=True)
    job.started = True  # from here on, a job that does not end normally stops its runs
    _trigger(client, job, "multiplt_corpus", corpus)
    # The base model's evaluation needs nothing from the chain: it runs beside it (fine-tuning
    # evaluates only its checkpoints, evaluate_base=False).
    conf = {"model": args.model, "languages": langs, "n": args.n, "backend": "transformers",
            "max_new_tokens": args.max_new_tokens, "experiment": "main_job", "epoch": 0,
            "shards": 1, **({"limit": args.limit} if args.limit else {})}
    print(f"triggering multiplt_evaluate on the base model: {airflow.base_url}/dags/"
          f"multiplt_evaluate", flush=True)
    _trigger(client, job, "multiplt_evaluate", conf)

    def report(dag_id, run):
        print(f"  {datetime.datetime.now():%H:%M:%S} {dag_id} {run['dag_run_id']}: {run['state']}",
              flush=True)

    def waiting(lines):  # the heartbeat, when the job waits for something else than its runs
        for line in lines:
            print(f"  {datetime.datetime.now():%H:%M:%S} waiting: {line}", flush=True)

    runs = chain_job.follow(client, job, args.timeout, on_change=report,
                            on_heartbeat=lambda busy: heartbeat(client, busy), on_waiting=waiting)

    print("\nfunnel of every stage", flush=True)
    # the Asset events as follow read them (those Airflow cannot give are a line each); the
    # report's other REST reads are asked again after a transient error, as follow's polls are,
    # and one that still fails is a line naming what is not known: the report goes on
    again = chain_job.asked_again
    events, unknown = chain_report.job_events(client, job, "multiplt_finetune",
                                              runs["multiplt_finetune"])
    checkpoint_events = [e for e in events if e.get("name") == "multiplt_checkpoints"]
    lines = [*chain_report.steps_lines("corpus", folders["corpus"]),
             *chain_report.steps_lines("testgen", folders["testgen"]),
             *chain_report.translate_lines(folders["translate"], not_run),
             *chain_report.finetune_lines(checkpoint_events, bool(runs["multiplt_finetune"]),
                                          not_run, unknown),
             *(chain_report.hub_lines(publish_repo, runs["multiplt_publish"], not not_run)
               if publish_repo else chain_report.publish_lines(publish_dir, not not_run))]
    print("\n".join(lines), flush=True)
    print("\nruns and the stages that ended empty, were off or failed", flush=True)

    def tasks(read, what, dag_id, run_id):  # a run's tasks, or a line saying they are unknown
        try:
            return again(read, client, dag_id, run_id)
        except Exception as exc:
            if not chain_report.unreadable(exc):
                raise
            print(f"  (its {what} tasks could not be read: {chain_job._said(exc)})")
            return []

    ok = True
    for dag_id, dag_runs in runs.items():
        for run in dag_runs:
            ok &= run["state"] == "success"
            print(f"{dag_id} {run['dag_run_id']}: {run['state']}")
            for task_id, reason in tasks(chain_job.skip_reasons, "skipped", dag_id,
                                         run["dag_run_id"]):
                print(f"  {task_id} skipped: {reason}")
            if run["state"] == "failed":
                for task, reason in tasks(chain_job.failure_reasons, "failed", dag_id,
                                          run["dag_run_id"]):
                    print(f"  {task} failed: {reason}")
    events, unknown = chain_report.job_events(client, job, "multiplt_evaluate",
                                              runs["multiplt_evaluate"])
    for run_name, why in unknown:  # its rows are not in the table
        print(f"\npass@k: the results of {run_name} are not known: {why}", flush=True)
    scored = chain_report.print_scores(deployment_setting(airflow, "results_store"),
                                       chain_report.result_runs(events), "main_job")
    if not_run:
        print(f"\ntranslation and fine-tuning did not run: {not_run}", flush=True)
    return 0 if ok and scored else 1


def _trigger(client, job, dag_id: str, conf: dict) -> None:
    """Trigger a run of the job with a run id chosen first and counted as the job's before the
    call (a Ctrl-C while Airflow answers leaves no run the job does not know)."""
    from multiplt_airflow import chain_job

    run_id = chain_job.new_run_id()
    job.add_root(dag_id, run_id)
    got = client.trigger(dag_id, conf, run_id=run_id)
    if got != run_id:  # as Airflow names it
        job.add_root(dag_id, got)


def heartbeat(client, busy) -> None:
    """The stages at work, at most once a minute (a stage may work for many minutes). A REST
    call that fails here is one line: the job goes on."""
    from multiplt_airflow import chain_job

    for run in busy:
        try:
            tasks = chain_job.working_tasks(client, run["dag_id"], run["dag_run_id"])
        except (AirflowAPIError, OSError, http.client.HTTPException) as exc:
            tasks = [f"(its tasks could not be read: {chain_job._said(exc)})"]
        print(f"  {datetime.datetime.now():%H:%M:%S} still {run['state']}: {run['dag_id']} "
              f"{run['dag_run_id']}" + (f": {', '.join(tasks)}" if tasks else ""), flush=True)


def _one_line(exc: BaseException, airflow) -> str:
    """An error of Airflow or of its API server as one line: a multi-line message (a DAG's
    import error with its traceback, a component's log tail) as its first line and its last."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    if len(lines) > 1:
        text = f"{text.rstrip(':')}: {lines[-1]}"
    if isinstance(exc, (urllib.error.URLError, ConnectionError, http.client.HTTPException)):
        return (f"Airflow's API server ({airflow.base_url}) did not answer "
                f"({type(exc).__name__}: {text[:300]}); its log is in {airflow.log_dir}")
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {text[:300]}"
    return text[:500]


class Terminated(KeyboardInterrupt):
    """SIGTERM, ending the job as Ctrl-C does (exit code 143 instead of 130)."""


def _interrupt(signum, frame):
    raise Terminated


class OneLineParser(argparse.ArgumentParser):
    """A usage error is one line (`PROG: problem ...`) and exit code 2, as the job's other bad
    arguments are, not argparse's usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (--help lists the options)\n")


def main(argv: list[str] | None = None) -> int:
    # scripts/main.sh names itself (MULTIPLT_PROG): its user never typed embedded_airflow.py
    prog = os.environ.pop("MULTIPLT_PROG", None) or None
    parser = OneLineParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", default=os.environ.get("MULTIPLT_AIRFLOW_HOME", str(REPO / ".airflow")),
                        help="AIRFLOW_HOME of this deployment (default: <repo>/.airflow)")
    parser.add_argument("--data", default=os.environ.get("MULTIPLT_DATA", str(REPO / "data")),
                        help="data directory: database, pipeline runs, results (default: <repo>/data)")
    parser.add_argument("--port", type=int, default=0,
                        help="API/UI port on 127.0.0.1 (default: 8080 if free, else a free one)")
    parser.add_argument("--start-timeout", type=float, default=600,
                        help="seconds to wait for Airflow to come up, above 0 (default 600)")
    parser.add_argument("--check-only", action="store_true",
                        help="check the arguments as before Airflow starts (a bad one: one line, "
                             "exit 2), then exit 0, starting nothing; main-job's --model may be "
                             "left out then (scripts/main.sh checks before it builds the tiny model)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("serve", help="start Airflow and wait for Ctrl-C")
    job = sub.add_parser("main-job", help="run the MultiPL-T chain with a model, every installed "
                         "language")
    job.add_argument("--model",
                     help="the base model to fine-tune and evaluate: a Hub id, a local folder or a "
                          "storage URI (scripts/main.sh: the tiny local model); required, but "
                          "with --check-only")
    job.add_argument("--teacher",
                     help="the model that writes tests and translations: a Hub id, a local folder "
                          "or storage URI (transformers backend), or the http(s)://HOST/v1 URL of "
                          "an OpenAI-compatible completions server (openai backend) "
                          "(default: --model)")
    job.add_argument("--teacher-model",
                     help="the served model name of a --teacher server (default: the one model "
                          "its /v1/models lists)")
    job.add_argument("--publish-repo", metavar="OWNER/NAME",
                     help="publish to the Hub (HF_ENDPOINT, HF_TOKEN): the datasets to this dataset "
                          "repo, the checkpoints to the model repo of the same name (default: a "
                          "dry run into the data directory)")
    job.add_argument("--source", default="stdlib",
                     help="corpus source (multiplt corpus build --source; default: stdlib)")
    job.add_argument("--corpus-limit", type=int,
                     help="read only the first N corpus documents of each corpus shard (the corpus DAG's limit; default: all)")
    job.add_argument("--languages", help="comma-separated codes (default: every installed "
                     "language; where the stages run on this machine, each one's runtime must "
                     "be installed); with no translation target among them (e.g. py alone) the "
                     "chain stops after testgen and only the base model is evaluated")
    job.add_argument("--n", type=int, default=2, help="completions per function (tests, translations) and per "
                     "problem (evaluation) (default 2)")
    job.add_argument("--max-new-tokens", type=int, default=128)
    job.add_argument("--limit", type=int, help="evaluate only the first N problems (default: all)")
    job.add_argument("--timeout", type=float, default=3600,
                     help="seconds to wait for the chain, above 0 (default 3600)")
    job.add_argument("--exit-when-done", action="store_true", help="stop Airflow after the run")
    args = parser.parse_args(argv)
    if args.cmd == "main-job" and args.model is None and not args.check_only:
        job.error("the following arguments are required: --model")
    try:
        check_timeouts(args)
        if args.cmd == "main-job":
            args.teacher_generation = job_models.check_job_models(args)
            check_job_args(args)
    except MultipltError as exc:
        print(f"{args.cmd}: {exc}", file=sys.stderr)
        return 2
    if args.check_only:
        return 0

    airflow = EmbeddedAirflow(args.home, port=args.port or pick_port(8080), data_dir=args.data,
                              env=job_models.airflow_environment(args))
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops Airflow as cleanly as Ctrl-C
    # Ctrl-C stops it however it was started: a shell without job control starts its background
    # commands with SIGINT ignored, which Python would keep (the job could not be stopped by a
    # SIGINT to its process group, e.g. from a script or a test run in the background)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    print(f"starting embedded Airflow (AIRFLOW_HOME={airflow.airflow_home}) ...", flush=True)
    rc = 0  # serving until Ctrl-C: the job's exit code (0 for serve)
    try:
        airflow.start(timeout=args.start_timeout)
        print(f"{datetime.datetime.now():%H:%M:%S} embedded Airflow is healthy", flush=True)
        print(airflow.login_text(), flush=True)
        if args.cmd == "main-job":
            rc = main_job(airflow, args)
            print(airflow.login_text(), flush=True)
            if args.exit_when_done:
                return rc
        wait_for_ctrl_c(airflow)
    except KeyboardInterrupt as exc:  # before the job ended: 130, or 143 after SIGTERM
        print("\nstopping Airflow ...", flush=True)
        rc = 143 if isinstance(exc, Terminated) else 130
    except (AirflowAPIError, TimeoutError) as exc:  # one line, not a traceback
        print(f"{args.cmd}: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
        rc = 1
    except (OSError, RuntimeError, http.client.HTTPException) as exc:
        # the API server gone (connection refused or reset), a DAG's import error, a component
        # that exited: one line, not a traceback
        print(f"{args.cmd}: {_one_line(exc, airflow)}", file=sys.stderr, flush=True)
        rc = 1
    finally:
        airflow.stop()
    return rc


if __name__ == "__main__":
    sys.exit(main())
