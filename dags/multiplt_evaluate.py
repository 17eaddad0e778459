"""multiplt_evaluate: benchmark build -> generate -> execute (sharded) -> score -> record results.

Wiring only: every stage is one `multiplt` command through the stage runtime (a subprocess on
the embedded default, a container in production); `plan` only turns the run's Params into those
command lines. Storage: the `[multiplt] data_uri` root; results: `[multiplt] results_store`.

Each entry of the plan (a language of a model) goes through its stages on its own: build and
generate run in the mapped task group `generation`, score and record in `scoring`, one instance
of each per entry, so one entry's failure leaves the others to be scored and recorded. Execute
sits between the two, mapped over the shards of every entry that was generated: Airflow 3.3
refuses a mapped task inside a mapped task group ("operator expansion in an expanded task group
is not yet supported"), so the shards cannot be mapped inside the per-entry group, and execute
starts once every entry's generate has ended.
"""

from __future__ import annotations

import contextlib
import datetime

from airflow.sdk import DAG, Param, TaskGroup, task, task_group
from multiplt_airflow import settings as multiplt_settings
from multiplt_airflow.stage import stage_task, stage_task_mapped
from multiplt_pipelines import assets
from multiplt_pipelines import params as schemas
from multiplt_pipelines.watching import evaluate_params

SETTINGS = multiplt_settings.load()  # airflow.cfg [multiplt]: no database, no network
RESULTS = assets.results(SETTINGS)
SCHEDULE = SETTINGS.evaluate_schedule.strip() or None  # [multiplt] evaluate_schedule; off by default
PARAMS = evaluate_params(schemas.EVALUATE, SCHEDULE)

# The arguments of each group instance out of its plan entry (XComArg.map, per entry).
def generation_commands(entry: dict) -> dict:
    return {"build": entry["build"], "generate": entry["generate"]}


def scoring_commands(entry: dict) -> dict:
    return {"entry": entry, "score": entry["score"], "record": entry["record"]}


def task_ids(node) -> list[str]:
    """The task ids of a stage: its task, or the tasks of its group (a docker sandbox stage)."""
    return [t.task_id for t in node.iter_tasks()] if isinstance(node, TaskGroup) else [node.task_id]


DOC = """
### Evaluate a model on MultiPL-E-style benchmarks

For each language in `languages`: build the benchmark from `benchmark_source`, sample `n`
completions per problem with `backend` (GPU task, pool `gpu`), run them in the sandbox fanned
out over `shards` mapped tasks, score pass@k, and record the scores in the results store
(read by the **Leaderboard** page); then `announce_results` updates the `multiplt_results`
Asset, its event extra naming `results_store` and each recorded run (`lang`, `model`,
`revision`, `run` folder), with `experiment` and `epoch`, and `failed`: the runs that were not
recorded, each with the `reason` (the first stage, or shard, that did not succeed).

* Each language (of each model) goes through its stages on its own: `generation` (build, then
  generate) and `scoring` (score, then record) are mapped task groups, one instance per
  language; `execute` runs the shards of every language whose generate succeeded, once each
  generate has ended. A language whose generate or an execute shard failed (after its retries)
  is not scored: its `scoring.executed` fails, naming the stage (and shard), and its score and
  record are `upstream_failed`; the others are scored, recorded and announced. `all_recorded`
  then fails the run, naming each language that was not recorded and why; when none was,
  `announce_results` is skipped and nothing is announced (and when no generate succeeded,
  `shard_commands` fails and nothing is executed).
* A checkpoint of a training output is `model` = the output URI, `revision` = its tag
  (`rkt-multiplt-epoch3`), with `experiment` and `epoch` as labels; `multiplt_finetune` triggers
  one run per checkpoint this way.
* Run folders: `<data_uri>/evaluate/<benchmark>-<lang>-<model>-<revision>-<temperature>/`
  (`<benchmark>` ends in `_first<N>`/`_p<hash>` for part of a source, then `_g<hash>` when
  `top_p`, `max_new_tokens`, `backend` or `tokenizer` differ from the defaults, or a rerun
  pins a Hub tokenizer's revision); every stage resumes, so a rerun does only the missing work.
* Periodic reruns: with `[multiplt] evaluate_schedule` set (a cron, e.g. `@weekly`; empty on the
  embedded default), each scheduled run evaluates every model of `rerun_models` (the Param, or
  the same key in the Airflow Variable `multiplt_evaluate`, whose keys override the Param
  defaults of scheduled runs). With `evaluate_schedule` set, a manual run whose conf names no
  `model` does the same, the Variable included (its conf overrides both); a manual run that
  names `model` evaluates that model and does not read the Variable (without
  `evaluate_schedule`, `model` is required). Such a rerun evaluates a Hub model given without
  `revision` at the commit its default branch is at when the run starts (`plan` asks the Hub):
  the commit is the run's `revision`, so a model whose `main` moved gets a new run folder and
  results naming that commit; a Hub `tokenizer` likewise, without `tokenizer_revision` (an
  entry's key) at its current commit, passed to generate as `--tokenizer-revision`; a local
  folder or storage URI is evaluated as it is. A model or
  revision the Hub does not have (or a commit without `config.json`) is left out of a scheduled
  run with a warning in `plan`'s log (the run fails only when none is left), and fails a manual
  run at once. A Hub that cannot be reached fails `plan` with a retry (with `HF_HUB_OFFLINE`
  set: no retry; pin each Hub model's `revision`). A manual run that names its `model` is not
  looked up: without `revision` it evaluates the default branch, in the `main` run folder
  (once that folder holds samples of another commit, generate refuses to add to it: give the
  commit as `revision`).
* `backend=replay` with `replay_source` (use `{lang}` for per-language sources) re-scores
  existing completions without a model; `backend=openai` with `api_base` samples from an
  OpenAI-compatible server (`model` = its served model name).
* Settings a stage would refuse (one of those backends without its Param, an unknown
  `benchmark_source`, a `model` that is no Hub repo id, folder or URI, a Variable's value its
  Param refuses, a key of the conf or of the Variable that is no Param, a `rerun_models` entry
  that is no model name or `{model, revision, tokenizer, tokenizer_revision}`) fail `plan` with the command's
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

    entries = plan(SETTINGS.data_uri, SETTINGS.results_store)

    @task_group(group_id="generation")
    def generation(build: list[str], generate: list[str]):
        """One entry's benchmark, then its completions."""
        stage_task("build_benchmark", build) >> stage_task("generate", generate, gpu=True)

    generated = generation.expand_kwargs(entries.map(generation_commands))
    GENERATE = generated.get_child_by_label("generate").task_id

    @task(trigger_rule="all_done_min_one_success")
    def shard_commands(entries: list[dict], ti=None) -> list[list[str]]:
        """Execute fans out over the shards of every entry whose generate succeeded, once every
        generate has ended (asks Airflow for their states); fails when none did."""
        from airflow.sdk.exceptions import AirflowFailException
        from multiplt_pipelines.chain import shard_lanes, task_states

        lanes = shard_lanes(entries, task_states(ti, [GENERATE])[GENERATE])
        if not lanes:
            raise AirflowFailException(f"no entry was generated: generate failed for all "
                                       f"{len(entries)} (see generation.generate)")
        return lanes

    lanes = shard_commands(entries)
    generated >> lanes
    execute = stage_task_mapped("execute", lanes, sandbox=True)
    # (name, task ids, per shard): the stages an entry goes through, in order
    EXECUTED = [("build_benchmark", task_ids(generated.get_child_by_label("build_benchmark")), False),
                ("generate", [GENERATE], False), ("execute", task_ids(execute), True)]

    @task_group(group_id="scoring")
    def scoring(entry: dict, score: list[str], record: list[str]):
        """One entry's pass@k and its results, once it was generated and executed."""

        @task(trigger_rule="all_done_min_one_success")
        def executed(entry: dict, lanes: list[list[str]] | None, ti=None) -> None:
            """Fails (no retry; the entry's score and record are then upstream_failed) unless
            the entry's build, generate and every execute shard succeeded, naming the first
            that did not; the other entries' instances go on."""
            from airflow.sdk.exceptions import AirflowFailException
            from multiplt_pipelines.chain import not_done, task_states

            states = task_states(ti, [t for _, ids, _ in EXECUTED for t in ids])
            reason = not_done(entry, ti.map_index, lanes or [], states, EXECUTED)
            if reason:
                raise AirflowFailException(f"{entry['lang']} {entry['model']} ({entry['run']}) "
                                           f"is not scored: {reason}")

        (executed(entry, lanes) >> stage_task("score", score)
         >> stage_task("record_results", record))

    scored = scoring.expand_kwargs(entries.map(scoring_commands))
    execute >> scored
    STAGES = [*EXECUTED, ("score", task_ids(scored.get_child_by_label("score")), False),
              ("record_results", task_ids(scored.get_child_by_label("record_results")), False)]

    @task(outlets=[RESULTS], trigger_rule="all_done_min_one_success")
    def announce_results(entries: list[dict], lanes: list[list[str]] | None, results_store: str,
                         params=None, outlet_events=None, ti=None) -> dict:
        """The results Asset event: the store, the run folders recorded into it and those that
        were not (asks Airflow for the stages' states; no storage I/O). Skipped when none was."""
        import logging

        from airflow.sdk.exceptions import AirflowSkipException
        from multiplt_pipelines.chain import evaluation_results, failed_line, task_states

        states = task_states(ti, [t for _, ids, _ in STAGES for t in ids])
        recorded, failed = evaluation_results(entries, lanes or [], states, STAGES)
        if failed:
            logging.getLogger("airflow.task").warning("not recorded: %s", failed_line(failed))
        if not recorded:
            raise AirflowSkipException(f"nothing was recorded: {failed_line(failed)}")
        extra = {"results_store": results_store, "experiment": params.get("experiment"),
                 "epoch": params.get("epoch"), "runs": recorded, "failed": failed}
        outlet_events[RESULTS].extra = extra
        return extra

    @task(trigger_rule="all_done_min_one_success")
    def all_recorded(entries: list[dict], lanes: list[list[str]] | None, ti=None) -> None:
        """Fails the run, naming them, when an entry was not recorded (announce_results
        announced the others)."""
        from airflow.sdk.exceptions import AirflowFailException
        from multiplt_pipelines.chain import evaluation_results, failed_line, task_states

        _, failed = evaluation_results(entries, lanes or [], task_states(
            ti, [t for _, ids, _ in STAGES for t in ids]), STAGES)
        if failed:
            raise AirflowFailException(f"{len(failed)} of {len(entries)} evaluations were not "
                                       f"recorded: {failed_line(failed)}")

    scored >> [announce_results(entries, lanes, SETTINGS.results_store),
               all_recorded(entries, lanes)]
