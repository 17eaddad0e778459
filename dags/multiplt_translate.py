"""multiplt_translate: step-1 functions with tests -> translations into each language, validated
in the sandbox, cleaned and deduplicated (MultiPL-T step 2).

Wiring only: per (language, shard), `multiplt translate --stage sample` (GPU, pool `gpu`),
`multiplt execute` on the shard's completions (the sandbox runtime) and `multiplt translate
--stage collect`; then `--stage summary` writes funnel.json. `plan` only turns the Params into
those command lines (from the triggering tests event's `tests_uri`, or the `tests` Param of a
manual run) and returns them with the settings it used, which `summary_argvs` and
`announce_<lang>` read (they do not resolve the Variable again). Scheduled on the tests Asset
of multiplt_testgen; emits one dataset Asset per language (`multiplt_dataset_<lang>`), which
multiplt_finetune is scheduled on. A run processes one tests input, its newest event's;
`other_inputs` starts a run of this DAG (`run_other_inputs`) for each other one announced to it
(chain.other_input_runs).
"""

from __future__ import annotations

import datetime

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, Param, task
from multiplt_airflow import settings as multiplt_settings
from multiplt_airflow.stage import stage_task_mapped
from multiplt_pipelines import assets
from multiplt_pipelines import translation as plans

SETTINGS = multiplt_settings.load()  # airflow.cfg [multiplt]: no database, no network
TESTS = assets.tests(SETTINGS)
DATASETS = {code: assets.dataset(SETTINGS, code) for code in plans.SPLITS}


def sample_command(entry: dict) -> list[str]:
    return entry["sample"]


def execute_command(entry: dict) -> list[str]:
    return entry["execute"]


def collect_command(entry: dict) -> list[str]:
    return entry["collect"]


DOC = """
### Translate Python functions into Racket, Julia, R, OCaml and Lua (MultiPL-T step 2)

For every function of the tests dataset that triggered the run (the `tests_uri` of its
`multiplt_testgen_tests` event) or, in a run started by hand, of `tests` (required then: e.g.
`<data_uri>/testgen/corpus_stdlib_functions/tests`), and every language in
`languages`: build the MultiPL-T prompt (canonical Python as a comment, the docstring, the
signature) and translated tests, sample `n` translations with `model` (GPU task, pool `gpu`;
`backend=openai` + `api_base` for a vLLM server fleet), run each with its tests in the sandbox,
keep the passing ones, clean them and deduplicate (exact, then ROUGE-L above
`rouge_threshold`). Functions are split into `shards` per language; each shard is three mapped
tasks (sample, validate, collect). Output: `<out>/data/<split>-*.parquet` (one dataset Asset per
language), `<out>/excluded/`, `<out>/funnel.json`; by default `out` is
`<data_uri>/translate/<name>`, `<name>` being the tests URI under `data_uri` as one folder name
(e.g. `testgen_corpus_stdlib_functions_tests`), so each tests input has its own output. Every
stage resumes: a rerun on the same tests does only the missing work. See docs/translation.md.

One run, one tests input: the newest triggering event's. Every other tests dataset announced to
the run (several events queued while a run worked, or, Airflow 3.3.2 losing them, announced after
its events but before it started) gets a run of its own: `other_inputs` logs each announced input
and what becomes of it, and `run_other_inputs` triggers this DAG with conf `{"tests": ...}` and a
run id made of the input and its event's time (`announced__...`: a retry, or a later run that
sees the same event, finds that run and skips), queued until this run ends. An input announced
with 0 rows, or an event naming no `tests_uri` (a WARNING), gets no run. Nor does any other
input when the Variable `multiplt_translate` (or a Param) sets `out`, which every run would read:
a folder inside it would not do either (`multiplt train`, in multiplt_finetune, reads a dataset
folder's data files recursively, so that dataset would be trained on as part of this one); a
WARNING names each such input and the conf to start this DAG with by hand, `{"tests": ...,
"out": ...}` with its default folder. An Asset-triggered run whose newest event's input already has such a run (started for
that event by a run cleared and started again, or by one in the seconds between its creation
and its start) skips `plan` with that run's id: each input is processed once. With the Param
`other_inputs` `log` (the main job sets it in the Variable while it runs), no other input gets a
run either: the same WARNING names it.

`announce_<lang>` updates `multiplt_dataset_<lang>` with extra `dataset_uri` (`<out>`), `lang`,
`split`, `model`, `tests_uri` and `rows` (the settings `plan` ran with), which starts
`multiplt_finetune` for that language.
A language with 0 kept rows is not announced (its task is skipped with that message); a tests
event with 0 rows, or a `tests` dataset with no row (a run started by hand), skips the whole run
at `plan` with that message.
Settings a stage would refuse (backend `replay` without `replay_source`, `openai` without
`api_base`, a `model` that is no Hub repo id, folder or URI, a Variable's value its Param
refuses, a key of the conf or of the Variable that is no Param, a relative local path, a missing
local model folder, no `tests` in a run started by hand) fail `plan` with the command's message,
no retry; a value taken from the Variable is named as such (`... (from the Airflow Variable
multiplt_translate)`).
"""

with DAG(
    dag_id="multiplt_translate",
    description="Translate step-1 functions per language, validate in the sandbox, dedup",
    schedule=TESTS,
    start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["multiplt", "translation", "data"],
    default_args={"owner": "multiplt", "retries": 1,
                  "retry_delay": datetime.timedelta(minutes=1)},
    params={name: Param(**schema) for name, schema in plans.PARAMS.items()},
    doc_md=DOC,
) as dag:

    @task
    def plan(data_uri: str, params=None, dag_run=None, triggering_asset_events=None,
             ti=None) -> dict:
        """The run's settings (the Variable read once, here) and the command lines of every
        (language, shard), on the announced or given tests; skipped when those tests hold no row,
        or when a run that other_inputs started processes them (chain.generation_plan); failed
        (no retry) on settings a stage would refuse."""
        from multiplt_pipelines.chain import TESTS_ASSET, generation_plan
        from multiplt_pipelines.translation import (PARAMS, require_tests, resolved_params,
                                                    translation_run)

        return generation_plan("multiplt_translate", PARAMS, resolved_params, require_tests,
                               translation_run, params=params, dag_run=dag_run,
                               triggering_asset_events=triggering_asset_events, data_uri=data_uri,
                               local=SETTINGS.runtime == "local", ti=ti, asset=TESTS_ASSET,
                               key="tests_uri")

    @task
    def shard_entries(planned: dict) -> list[dict]:
        return planned["entries"]

    @task
    def summary_argvs(planned: dict, data_uri: str) -> list[list[str]]:
        """The one `--stage summary` command line, once every shard is collected."""
        from multiplt_pipelines.translation import summary_command

        return [summary_command(planned["settings"], data_uri)]

    @task(inlets=[TESTS])
    def other_inputs(data_uri: str, params=None, dag_run=None, triggering_asset_events=None,
                     inlet_events=None) -> list[dict]:
        """A run of this DAG (conf `tests`, a stable run id, a note) for every tests input
        announced to this run but the one `plan` takes; each input and its fate logged. None
        when the Variable or a Param sets this run's `out`: a WARNING gives the conf to start it
        by hand. Beside `plan`, so that its skip or failure on the newest input stops none of
        them."""
        from multiplt_pipelines.chain import TESTS_ASSET, other_input_runs
        from multiplt_pipelines.translation import PARAMS, default_out

        return other_input_runs("multiplt_translate", dag_run, triggering_asset_events,
                                inlet_events, TESTS, asset=TESTS_ASSET, key="tests_uri",
                                param="tests", params=params, data_uri=data_uri,
                                default_out=default_out, names=PARAMS, nest=False)

    TriggerDagRunOperator.partial(task_id="run_other_inputs", trigger_dag_id="multiplt_translate",
                                  reset_dag_run=False, skip_when_already_exists=True
                                  ).expand_kwargs(other_inputs(SETTINGS.data_uri))

    planned = plan(SETTINGS.data_uri)
    entries = shard_entries(planned)
    sample = stage_task_mapped("sample", entries.map(sample_command), gpu=True)
    # each (language, shard)'s validate and collect start once every instance of the stage
    # before has ended, whatever its outcome (the rule's one success is shard_entries'; a skipped
    # plan skips them): a failed one stops its own (language, shard) only (its collect fails at
    # once, naming the stage to run first); summary needs them all
    validate = stage_task_mapped("validate", entries.map(execute_command), sandbox=True,
                                 trigger_rule="all_done_min_one_success")
    collect = stage_task_mapped("collect", entries.map(collect_command),
                                trigger_rule="all_done_min_one_success")
    summary = stage_task_mapped("summary", summary_argvs(planned, SETTINGS.data_uri))
    sample >> validate >> collect >> summary

    for code, dataset in DATASETS.items():

        @task(task_id=f"announce_{code}", outlets=[dataset])
        def announce(lang: str, planned: dict, data_uri: str, outlet_events=None) -> dict:
            """This language's dataset Asset event, from the settings `plan` used (skipped when
            the run did not translate it or kept 0 rows)."""
            from airflow.sdk.exceptions import AirflowSkipException
            from multiplt_pipelines.chain import EmptyInput
            from multiplt_pipelines.translation import dataset_announcement

            settings = planned["settings"]
            if lang not in settings["languages"]:
                raise AirflowSkipException(f"{lang} was not translated in this run")
            try:
                extra = dataset_announcement(settings, data_uri, lang)
            except EmptyInput as reason:
                raise AirflowSkipException(str(reason)) from None
            outlet_events[DATASETS[lang]].extra = extra
            return extra

        summary >> announce(code, planned, SETTINGS.data_uri)
