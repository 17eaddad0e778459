"""multiplt_evaluate: benchmark build -> generate -> execute (sharded) -> score -> record results.

Wiring only: every stage is one `multiplt` command through the stage runtime (a subprocess on
the embedded default, a container in production); `plan` only turns the run's Params into those
command lines. Storage: the `[multiplt] data_uri` root; results: `[multiplt] results_store`.
"""

from __future__ import annotations

import contextlib
import datetime

from airflow.sdk import DAG, Asset, Param, task
from multiplt_airflow import settings as multiplt_settings
from multiplt_airflow.stage import stage_task_mapped
from multiplt_pipelines import params as schemas
from multiplt_pipelines.watching import evaluate_params

SETTINGS = multiplt_settings.load()  # airflow.cfg [multiplt]: no database, no network
RESULTS = Asset(name="multiplt_results", uri=SETTINGS.results_store)
SCHEDULE = SETTINGS.evaluate_schedule.strip() or None  # [multiplt] evaluate_schedule; off by default
PARAMS = evaluate_params(schemas.EVALUATE, SCHEDULE)

# Pick one stage's command line out of a language's plan entry (XComArg.map, per language).
def build_command(entry: dict) -> list[str]:
    return entry["build"]


def generate_command(entry: dict) -> list[str]:
    return entry["generate"]


def score_command(entry: dict) -> list[str]:
    return entry["score"]


def record_command(entry: dict) -> list[str]:
    return entry["record"]


DOC = """
### Evaluate a model on MultiPL-E-style benchmarks

For each language in `languages`: build the benchmark from `benchmark_source`, sample `n`
completions per problem with `backend` (GPU task, pool `gpu`), run them in the sandbox fanned
out over `shards` mapped tasks, score pass@k, and record the scores in the results store
(read by the **Leaderboard** page); then `announce_results` updates the `multiplt_results`
Asset, its event extra naming `results_store` and each recorded run (`lang`, `model`,
`revision`, `run` folder), with `experiment` and `epoch`.

* A checkpoint of a training output is `model` = the output URI, `revision` = its tag
  (`rkt-multiplt-epoch3`), with `experiment` and `epoch` as labels; `multiplt_finetune` triggers
  one run per checkpoint this way.
* Run folders: `<data_uri>/evaluate/<benchmark>-<lang>-<model>-<revision>-<temperature>/`
  (`<benchmark>` ends in `_first<N>`/`_p<hash>` for part of a source, then `_g<hash>` when
  `top_p`, `max_new_tokens`, `backend` or `tokenizer` differ from the defaults); every stage
  resumes, so a rerun does only the missing work.
* Periodic reruns: with `[multiplt] evaluate_schedule` set (a cron, e.g. `@weekly`; empty on the
  embedded default), each scheduled run evaluates every model of `rerun_models` (the Param, or
  the same key in the Airflow Variable `multiplt_evaluate`, whose keys override the Param
  defaults of scheduled runs). With `evaluate_schedule` set, a manual run whose conf names no
  `model` does the same, the Variable included (its conf overrides both); a manual run that
  names `model` evaluates that model and does not read the Variable (without
  `evaluate_schedule`, `model` is required). Such a rerun evaluates a Hub model given without
  `revision` at the commit its default branch is at when the run starts (`plan` asks the Hub):
  the commit is the run's `revision`, so a model whose `main` moved gets a new run folder and
  results naming that commit; a local folder or storage URI is evaluated as it is. A model or
  revision the Hub does not have (or a commit without `config.json`) is left out of a scheduled
  run with a warning in `plan`'s log (the run fails only when none is left), and fails a manual
  run at once. A Hub that cannot be reached fails `plan` with a retry (with `HF_HUB_OFFLINE`
  set: no retry; pin each Hub model's `revision`). A manual run that names its `model` is not
  looked up: without `revision` it evaluates the default branch, in the `main` run folder.
* `backend=replay` with `replay_source` (use `{lang}` for per-language sources) re-scores
  existing completions without a model; `backend=openai` with `api_base` samples from an
  OpenAI-compatible server (`model` = its served model name).
* Settings a stage would refuse (one of those backends without its Param, an unknown
  `benchmark_source`, a `model` that is no Hub repo id, folder or URI, a Variable's value its
  Param refuses, a key of the conf or of the Variable that is no Param, a `rerun_models` entry
  that is no model name or `{model, revision, tokenizer}`) fail `plan` with the command's
  message, before any stage runs; no retry. A value taken from the Variable (an entry of its
  `rerun_models` included) is named as such (`... (from the Airflow Variable
  multiplt_evaluate)`).
"""

with DAG(
    dag_id="multiplt_evaluate",
    description="Evaluate a model or checkpoint: build, generate, execute, score, record",
    schedule=SCHEDULE,
    start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    max_active_runs=4,
    tags=["multiplt", "evaluation"],
    default_args={"owner": "multiplt", "retries": 1,
                  "retry_delay": datetime.timedelta(seconds=30)},
    params={name: Param(**schema) for name, schema in PARAMS.items()},
    doc_md=DOC,
) as dag:

    @task
    def plan(data_uri: str, results_store: str, params=None, dag_run=None) -> list[dict]:
        """The command line of every stage of this run, one entry per language (and per model
        of `rerun_models` in a rerun); settings a stage would refuse fail it, no retry. A rerun
        (scheduled, or by hand without `model` in the conf) takes the Airflow Variable's keys
        the conf does not set, and asks the Hub for each Hub model's commit
        (plans.rerun_revisions); a Hub that cannot be asked fails it with a retry."""
        import logging

        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
        from multiplt_airflow.credentials import from_environment
        from multiplt_pipelines import checks
        from multiplt_pipelines.chain import run_settings
        from multiplt_pipelines.plans import HubLookupFailed, evaluation_plan, rerun_revisions
        from multiplt_pipelines.watching import (NothingToEvaluate, distinct_evaluations,
                                                 evaluation_targets)

        scheduled = dag_run.run_type == "scheduled"
        # a rerun: a scheduled run, or one started by hand whose conf names no `model` (`model`
        # has no default, null with a schedule: only the conf sets the Param); only a rerun reads
        # the Variable (a run for one model is its conf's, not a deployment's list)
        rerun = scheduled or not params.get("model")
        try:
            settings, from_variable = run_settings("multiplt_evaluate", params, dag_run, PARAMS,
                                                   read_variable=rerun)
            with checks.variable_source(from_variable, "multiplt_evaluate"):
                checks.rerun_models(settings.get("rerun_models"))
                targets = evaluation_targets(settings, rerun)
                runs = [{**settings, **target} for target in targets]
                for run, target in zip(runs, targets):
                    with checks.rerun_entry(run["model"]) if target else contextlib.nullcontext():
                        checks.evaluation(run, local=SETTINGS.runtime == "local")
                numbered = list(enumerate(runs, 1))
                if rerun:
                    source = (" (rerun_models from the Airflow Variable multiplt_evaluate)"
                              if "rerun_models" in from_variable else "")
                    numbered = rerun_revisions(runs, [bool(t) for t in targets], drop=scheduled,
                                               token=from_environment().get("HF_TOKEN"),
                                               warn=logging.getLogger("airflow.task").warning,
                                               source=source)
        except NothingToEvaluate as reason:
            raise AirflowSkipException(str(reason)) from None
        except checks.BadParams as reason:
            raise AirflowFailException(str(reason)) from None
        except HubLookupFailed as failed:
            if failed.retry:
                raise
            raise AirflowFailException(str(failed)) from None
        # entries that name one run folder once pinned (a model and its current commit, a
        # folder with and without its `/`) are one evaluation: the first, with a warning
        return distinct_evaluations([(number, run, evaluation_plan(run, data_uri, results_store))
                                     for number, run in numbered])

    @task
    def shard_commands(entries: list[dict]) -> list[list[str]]:
        """Execute fans out over languages x shards."""
        return [argv for entry in entries for argv in entry["execute"]]

    entries = plan(SETTINGS.data_uri, SETTINGS.results_store)
    build = stage_task_mapped("build_benchmark", entries.map(build_command))
    generate = stage_task_mapped("generate", entries.map(generate_command), gpu=True)
    execute = stage_task_mapped("execute", shard_commands(entries), sandbox=True)
    score = stage_task_mapped("score", entries.map(score_command))
    record = stage_task_mapped("record_results", entries.map(record_command))

    @task(outlets=[RESULTS])
    def announce_results(entries: list[dict], results_store: str, params=None, outlet_events=None) -> dict:
        """The results Asset event: the store and the run folders recorded into it (no I/O)."""
        extra = {"results_store": results_store, "experiment": params.get("experiment"),
                 "epoch": params.get("epoch"),
                 "runs": [{k: e[k] for k in ("lang", "model", "revision", "run")} for e in entries]}
        outlet_events[RESULTS].extra = extra
        return extra

    build >> generate >> execute >> score >> record >> announce_results(entries, SETTINGS.results_store)
