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
starts once every entry's generate has ended. The shards of an entry generated only when the
run's failed tasks are cleared ("Clear -> only failed") run in execute_late, and what is recorded
then is announced by announce_recovered (multiplt_pipelines.recovery).
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
* Recovering a failed run: fix the cause, then **Clear** the run with **Only failed** (the
  UI's Clear run, or the REST API's clear with `only_failed`): the failed tasks and those
  `upstream_failed` run again, the others keep their results. A language whose generate failed
  and now succeeds was never planned into `execute` (which, like `shard_commands`, succeeded
  and is not run again): `late_shard_commands` (`upstream_failed` whenever a generate failed,
  so cleared with it) plans its shards, `execute_late` runs them and `late_executed` lets its
  scoring go on (in a run whose generates all succeeded at once, `execute_late` has no shard
  and is skipped). Once every language is recorded, `announce_recovered` (`upstream_failed`
  while `all_recorded` fails) updates the `multiplt_results` Asset with the runs recorded since
  `announce_results` (`failed` empty); otherwise it is skipped. Clearing the whole run, or
  `generation.generate` of the language with **Downstream**, works too (execute then runs again
  for every language; finished shards are kept); clearing that generate alone plans none of
  its shards (its `scoring.executed`, run again, fails naming these ways to recover).
* `revision` and `tokenizer` (like `model`) refuse an empty value and spaces at either end;
  null leaves them out. In the Airflow Variable or a `rerun_models` entry, which Airflow does
  not check, `""` is taken as null.
* A checkpoint of a training output is `model` = the output URI, `revision` = its tag
  (`rkt-multiplt-epoch3`), with `experiment` and `epoch` as labels; `multiplt_finetune` triggers
  one run per checkpoint this way.
* Run folders: `<data_uri>/evaluate/<benchmark>-<lang>-<model>-<revision>-<temperature>/`
  (`<benchmark>` ends in `_first<N>`/`_p<hash>` for part of a source, then `_g<hash>` when
  `top_p`, `max_new_tokens`, `backend` or `tokenizer` differ from the defaults, or a rerun
  pins a Hub tokenizer's revision); every stage resumes, so a rerun does only the missing work.
* Periodic reruns: with `[multiplt] evaluate_schedule` set (a cron expression or preset, e.g.
  `0 3 * * 1` or `@weekly`, or `@once`; empty on the embedded default; any other value fails
  the settings check, naming the key and the value), each scheduled run evaluates every model of `rerun_models` (the Param, or
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
        from multiplt_pipelines.plans import (HubLookupFailed, empty_as_unset, evaluation_plan,
                                              rerun_revisions)
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
            # "" revision or tokenizer (of the Variable, which Airflow never checks) is null
            settings = empty_as_unset(settings)
            with checks.variable_source(from_variable, "multiplt_evaluate"):
                checks.rerun_models(settings.get("rerun_models"))
                targets = evaluation_targets(settings, rerun)
                runs = [empty_as_unset({**settings, **target}) for target in targets]
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

    @task
    def late_shard_commands(entries: list[dict], lanes: list[list[str]] | None) -> list[list[str]]:
        """The shards of the entries generated after `shard_commands` ran: none in a run whose
        generates all succeeded. It waits for every generate to succeed (all_success), so it is
        upstream_failed when one failed, and "Clear -> only failed" clears it with that generate:
        run again, it plans the shards of each entry generated since, which execute_late runs
        (shard_commands and execute, successes, are not run again)."""
        from multiplt_pipelines.recovery import late_lanes

        return late_lanes(entries, lanes)

    late = late_shard_commands(entries, lanes)
    generated >> late
    execute_late = stage_task_mapped("execute_late", late, sandbox=True)

    @task(trigger_rule="none_failed_min_one_success")
    def late_executed() -> None:
        """Joins execute_late for scoring: runs (a no-op) once late_shard_commands succeeded and
        no execute_late shard failed; skipped with them (a run with nothing to evaluate),
        upstream_failed when a generate failed (so a Clear of the failed tasks clears it too)
        or an execute_late shard did. execute_late itself is skipped in a run whose generates
        all succeeded the first time (mapped over no shard), and a skipped upstream would skip
        scoring.executed (all_done_min_one_success skips on one)."""

    late_done = late_executed()
    [late, execute_late] >> late_done
    # (execute task id, execute_late task id): the per-shard tasks of the two (chain.task_states
    # of both; recovery.with_late_states counts execute_late's instances as execute's)
    EXECUTE_PAIRS = list(zip(task_ids(execute), task_ids(execute_late)))
    # (name, task ids, per shard): the stages an entry goes through, in order
    EXECUTED = [("build_benchmark", task_ids(generated.get_child_by_label("build_benchmark")), False),
                ("generate", [GENERATE], False), ("execute", task_ids(execute), True)]

    def stage_states(ti, stages, lanes: list[list[str]], late: list[list[str]]) -> dict:
        """chain.task_states of `stages` (and of execute_late), execute_late's instances counted
        as execute's after `lanes` (recovery.with_late_states): with lanes + late, chain.not_done
        finds each entry's shards where they ran."""
        from multiplt_pipelines.chain import task_states
        from multiplt_pipelines.recovery import with_late_states

        ids = [t for _, stage_ids, _ in stages for t in stage_ids]
        return with_late_states(task_states(ti, ids + [late_id for _, late_id in EXECUTE_PAIRS]), lanes,
                                EXECUTE_PAIRS)

    @task_group(group_id="scoring")
    def scoring(entry: dict, score: list[str], record: list[str]):
        """One entry's pass@k and its results, once it was generated and executed."""

        @task(trigger_rule="all_done_min_one_success")
        def executed(entry: dict, lanes: list[list[str]] | None, late: list[list[str]] | None,
                     ti=None) -> None:
            """Fails (no retry; the entry's score and record are then upstream_failed) unless
            the entry's build, generate and every execute shard (execute's, or execute_late's
            after a Clear) succeeded, naming the first that did not; the other entries'
            instances go on."""
            from airflow.sdk.exceptions import AirflowFailException
            from multiplt_pipelines.chain import not_done

            lanes, late = lanes or [], late or []
            states = stage_states(ti, EXECUTED, lanes, late)
            reason = not_done(entry, ti.map_index, lanes + late, states, EXECUTED)
            if (reason and states[GENERATE].get(ti.map_index) == "success"
                    and not any(argv in lanes + late for argv in entry["execute"])):
                # its generate was rerun on its own, after both planned the shards
                reason += (f" (its generate succeeded after its shards were planned: clear the "
                           f"run's failed tasks, Clear -> only failed, or "
                           f"{GENERATE}[{ti.map_index}] with Downstream)")
            if reason:
                raise AirflowFailException(f"{entry['lang']} {entry['model']} ({entry['run']}) "
                                           f"is not scored: {reason}")

        (executed(entry, lanes, late) >> stage_task("score", score)
         >> stage_task("record_results", record))

    scored = scoring.expand_kwargs(entries.map(scoring_commands))
    [execute, late_done] >> scored
    STAGES = [*EXECUTED, ("score", task_ids(scored.get_child_by_label("score")), False),
              ("record_results", task_ids(scored.get_child_by_label("record_results")), False)]

    @task(outlets=[RESULTS], trigger_rule="all_done_min_one_success")
    def announce_results(entries: list[dict], lanes: list[list[str]] | None,
                         late: list[list[str]] | None, results_store: str, params=None,
                         outlet_events=None, ti=None) -> dict:
        """The results Asset event: the store, the run folders recorded into it and those that
        were not (asks Airflow for the stages' states; no storage I/O). Skipped when none was."""
        import logging

        from airflow.sdk.exceptions import AirflowSkipException
        from multiplt_pipelines.chain import evaluation_results, failed_line

        lanes, late = lanes or [], late or []
        recorded, failed = evaluation_results(entries, lanes + late,
                                              stage_states(ti, STAGES, lanes, late), STAGES)
        if failed:
            logging.getLogger("airflow.task").warning("not recorded: %s", failed_line(failed))
        if not recorded:
            raise AirflowSkipException(f"nothing was recorded: {failed_line(failed)}")
        extra = {"results_store": results_store, "experiment": params.get("experiment"),
                 "epoch": params.get("epoch"), "runs": recorded, "failed": failed}
        outlet_events[RESULTS].extra = extra
        return extra

    @task(trigger_rule="all_done_min_one_success")
    def all_recorded(entries: list[dict], lanes: list[list[str]] | None,
                     late: list[list[str]] | None, ti=None) -> None:
        """Fails the run, naming them, when an entry was not recorded (announce_results
        announced the others)."""
        from airflow.sdk.exceptions import AirflowFailException
        from multiplt_pipelines.chain import evaluation_results, failed_line

        lanes, late = lanes or [], late or []
        _, failed = evaluation_results(entries, lanes + late,
                                       stage_states(ti, STAGES, lanes, late), STAGES)
        if failed:
            raise AirflowFailException(f"{len(failed)} of {len(entries)} evaluations were not "
                                       f"recorded: {failed_line(failed)}")

    @task(outlets=[RESULTS], trigger_rule="none_failed_min_one_success")
    def announce_recovered(entries: list[dict], lanes: list[list[str]] | None,
                           late: list[list[str]] | None, results_store: str, params=None,
                           outlet_events=None, ti=None) -> dict:
        """Once every entry was recorded, the results Asset event of the runs announce_results
        did not name: those recorded after a Clear of the failed tasks. It runs after
        announce_results and all_recorded, upstream_failed when all_recorded failed (so it is
        cleared with it); skipped when there is nothing more to announce (a run recorded in one
        go)."""
        import logging

        from airflow.sdk.exceptions import AirflowSkipException
        from multiplt_pipelines.chain import evaluation_results
        from multiplt_pipelines.recovery import unannounced

        lanes, late = lanes or [], late or []
        recorded, _ = evaluation_results(entries, lanes + late,
                                         stage_states(ti, STAGES, lanes, late), STAGES)
        runs = unannounced(recorded, ti.xcom_pull(task_ids="announce_results"))
        if not runs:
            # every run recorded in one go: logged, but no skip reason (the main job's report
            # lists the reasons of skipped tasks, and this one is no news)
            logging.getLogger("airflow.task").info(
                "nothing to announce: announce_results announced every recorded evaluation")
            raise AirflowSkipException
        extra = {"results_store": results_store, "experiment": params.get("experiment"),
                 "epoch": params.get("epoch"), "runs": runs, "failed": []}
        outlet_events[RESULTS].extra = extra
        return extra

    announced = announce_results(entries, lanes, late, SETTINGS.results_store)
    checked = all_recorded(entries, lanes, late)
    scored >> [announced, checked]
    [announced, checked] >> announce_recovered(entries, lanes, late, SETTINGS.results_store)
