"""multiplt_testgen: corpus functions -> LLM-written asserts validated in the sandbox, with
coverage and types (MultiPL-T step 1b).

Wiring only: per shard, `multiplt testgen --stage generate` (GPU, pool `gpu`), `--stage
validate` (the sandbox runtime) and `--stage write`; `plan` only turns the Params into those
command lines (from the triggering corpus event's `functions_uri`, or the `functions` Param of
a manual run) and returns them with the settings it used, which `announce` reads (it does not
resolve the Variable again); it skips the run when those functions hold no row. Scheduled on
the corpus functions Asset; `announce` emits the tests Asset. A run processes one functions
input, its newest event's; `other_inputs` starts a run of this DAG (`run_other_inputs`) for each
other one announced to it (chain.other_input_runs).
"""

from __future__ import annotations

import datetime

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, Param, task
from multiplt_airflow import settings as multiplt_settings
from multiplt_airflow.stage import stage_task_mapped
from multiplt_pipelines import assets
from multiplt_pipelines import testgen as testgen_plans

SETTINGS = multiplt_settings.load()  # airflow.cfg [multiplt]: no database, no network
FUNCTIONS = assets.functions(SETTINGS)
TESTS = assets.tests(SETTINGS)


def generate_command(entry: dict) -> list[str]:
    return entry["generate"]


def validate_command(entry: dict) -> list[str]:
    return entry["validate"]


def write_command(entry: dict) -> list[str]:
    return entry["write"]


DOC = """
### Generate and validate unit tests for corpus functions

For every function of the corpus that triggered the run (the `functions_uri` of its
`multiplt_corpus_functions` event) or, in a run started by hand, of `functions` (required
then: e.g. `<data_uri>/corpus/stdlib/functions`, where `multiplt_corpus` writes `source: stdlib`): sample `n` completions of
MultiPL-T's test prompt with `model` (GPU task, pool `gpu`), run each assert alone in the
sandbox, keep the passing ones, measure their statement coverage and infer types
(`content_with_types`). Functions are split into `shards` by sha1; each shard is three mapped
tasks (generate, validate, write). Output: `<out>/tests/` (the `multiplt_testgen_tests` Asset),
`<out>/excluded/` with reasons, `<out>/funnel.json`; by default `out` is
`<data_uri>/testgen/<name>`, `<name>` being the functions URI under `data_uri` as one folder
name (e.g. `corpus_stdlib_functions`), so each functions input has its own output. Every stage
resumes: a rerun on the same functions does only the missing work. See docs/testgen.md.

One run, one functions input: the newest triggering event's. Every other corpus announced to the
run (several events queued while a run worked, or, Airflow 3.3.2 losing them, announced after its
events but before it started) gets a run of its own: `other_inputs` logs each announced input and
what becomes of it, and `run_other_inputs` triggers this DAG with conf `{"functions": ...}` and a
run id made of the input and its event's time (`announced__...`: a retry, or a later run that
sees the same event, finds that run and skips), queued until this run ends. When the Variable
`multiplt_testgen` (or a Param) sets `out`, which every run would read, that run's conf also
sets `out` to `<out>/<name>` (`<name>` as above: the input as one folder name), a folder of its
own. An input announced with 0 rows, or an event naming no `functions_uri` (a WARNING), gets no
run. An Asset-triggered run whose newest event's input already has such a run (started for that
event by a run cleared and started again, or by one in the seconds between its creation and its
start) skips `plan` with that run's id: each input is processed once. With the Param
`other_inputs` `log` (the main job sets it in the Variable while it runs: a corpus announced
before the job began is not its work), no such run starts: a WARNING names each other input and
the conf to start this DAG with by hand, `{"functions": ..., "out": ...}` with its default folder.

`announce` updates `multiplt_testgen_tests` with extra `tests_uri` (`<out>/tests`),
`functions_uri`, `model` and `rows` (the settings `plan` ran with), which starts
`multiplt_translate`. When no function kept a passing test (0 rows), `announce` is skipped with
that message and nothing downstream runs; a corpus event with 0 rows, or a `functions` dataset
with no row (a run started by hand), skips the whole run at `plan` with that message.
Settings a stage would refuse (backend `replay` without `replay_source`, `openai` without
`api_base`, a `model` that is no Hub repo id, folder or URI, a Variable's value its Param
refuses, a key of the conf or of the Variable that is no Param, a relative local path, a missing
local model folder, no `functions` in a run started by hand) fail `plan` with the command's
message, no retry; a value taken from the Variable is named as such (`... (from the Airflow
Variable multiplt_testgen)`).
"""

with DAG(
    dag_id="multiplt_testgen",
    description="LLM-written unit tests for corpus functions, validated in the sandbox",
    schedule=[FUNCTIONS],
    start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["multiplt", "testgen", "data"],
    default_args={"owner": "multiplt", "retries": 1,
                  "retry_delay": datetime.timedelta(minutes=1)},
    params={name: Param(**schema) for name, schema in testgen_plans.PARAMS.items()},
    doc_md=DOC,
) as dag:

    @task
    def plan(data_uri: str, params=None, dag_run=None, triggering_asset_events=None,
             ti=None) -> dict:
        """The run's settings (the Variable read once, here) and the command lines of every
        shard's stages, on the announced or given functions; skipped when those functions hold
        no row, or when a run that other_inputs started processes them (chain.generation_plan);
        failed (no retry) on settings a stage would refuse."""
        from multiplt_pipelines.chain import FUNCTIONS_ASSET, generation_plan
        from multiplt_pipelines.testgen import (PARAMS, require_functions, resolved_params,
                                                testgen_run)

        return generation_plan("multiplt_testgen", PARAMS, resolved_params, require_functions,
                               testgen_run, params=params, dag_run=dag_run,
                               triggering_asset_events=triggering_asset_events, data_uri=data_uri,
                               local=SETTINGS.runtime == "local", ti=ti, asset=FUNCTIONS_ASSET,
                               key="functions_uri")

    @task
    def shard_entries(planned: dict) -> list[dict]:
        return planned["shards"]

    @task(outlets=[TESTS])
    def announce(planned: dict, data_uri: str, outlet_events=None) -> dict:
        """The tests Asset event: URI, source functions, model and rows (skipped if 0 rows), from
        the settings `plan` used."""
        from airflow.sdk.exceptions import AirflowSkipException
        from multiplt_pipelines.chain import EmptyInput
        from multiplt_pipelines.testgen import tests_announcement

        try:
            extra = tests_announcement(planned["settings"], data_uri)
        except EmptyInput as reason:
            raise AirflowSkipException(str(reason)) from None
        outlet_events[TESTS].extra = extra
        return extra

    @task(inlets=[FUNCTIONS])
    def other_inputs(data_uri: str, params=None, dag_run=None, triggering_asset_events=None,
                     inlet_events=None) -> list[dict]:
        """A run of this DAG (conf `functions`, and `out` `<out>/<input as a folder name>` when
        the Variable or a Param sets this run's `out`; a stable run id, a note) for every
        functions input announced to this run but the one `plan` takes; each input and its fate
        logged. Beside `plan`, so that its skip or failure on the newest input stops none of
        them."""
        from multiplt_pipelines.chain import FUNCTIONS_ASSET, other_input_runs
        from multiplt_pipelines.testgen import PARAMS, default_out

        return other_input_runs("multiplt_testgen", dag_run, triggering_asset_events,
                                inlet_events, FUNCTIONS, asset=FUNCTIONS_ASSET, key="functions_uri",
                                param="functions", params=params, data_uri=data_uri,
                                default_out=default_out, names=PARAMS, nest=True)

    TriggerDagRunOperator.partial(task_id="run_other_inputs", trigger_dag_id="multiplt_testgen",
                                  reset_dag_run=False, skip_when_already_exists=True
                                  ).expand_kwargs(other_inputs(SETTINGS.data_uri))

    planned = plan(SETTINGS.data_uri)
    entries = shard_entries(planned)
    generate = stage_task_mapped("generate", entries.map(generate_command), gpu=True)
    # each shard's validate and write start once every shard of the stage before has ended,
    # whatever its outcome (the rule's one success is shard_entries'; a skipped plan skips them):
    # a failed shard stops its own shard only (its next stage fails at once, naming the stage to
    # run first), and announce, which needs every shard, not the others
    validate = stage_task_mapped("validate", entries.map(validate_command), sandbox=True,
                                 trigger_rule="all_done_min_one_success")
    write = stage_task_mapped("write", entries.map(write_command),
                              trigger_rule="all_done_min_one_success")

    generate >> validate >> write >> announce(planned, SETTINGS.data_uri)
