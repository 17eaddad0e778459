"""multiplt_corpus: a Python corpus -> filtered, decontaminated, deduplicated functions.

Wiring only: `plan` turns the run's Params into command lines; `build_shard` maps
`multiplt corpus build --shard K/N` over the shards, `dedup` maps `multiplt corpus dedup
--bucket B/D` over the buckets of the cross-shard dedup pass, and `merge` writes functions/,
excluded/ and funnel.json, updating the `multiplt_corpus_functions` Asset.
"""

from __future__ import annotations

import datetime

from airflow.sdk import DAG, Asset, Param, task
from multiplt_airflow import settings as multiplt_settings
from multiplt_airflow.stage import stage_task_mapped
from multiplt_pipelines import chain
from multiplt_pipelines import testgen as testgen_plans
from multiplt_pipelines.corpus import CORPUS

SETTINGS = multiplt_settings.load()  # airflow.cfg [multiplt]: no database, no network
# the Asset multiplt_testgen is scheduled on (same name and URI as dags/multiplt_testgen.py)
FUNCTIONS = Asset(name=chain.FUNCTIONS_ASSET, uri=testgen_plans.functions_uri(SETTINGS.data_uri))

DOC = """
### Build the Python functions dataset (MultiPL-T step 1a)

Extract top-level functions with docstrings from `source`, drop `async def` functions,
generators (a `yield` of their own), and those without a return value, with non-ASCII text,
TODOs, too short, overlapping the `benchmarks`, or failing Pyright, then drop exact and near
duplicates across all shards. Output under `out` (default
`<data_uri>/corpus/<source>/`): `functions/` (kept rows), `excluded/` (every dropped row with its
`reason`), `funnel.json`.

* `build_shard` runs once per shard (`shards` mapped tasks), `dedup` once per bucket
  (`dedup_buckets`), then `merge`. Every step resumes: a rerun skips finished shards and buckets.
* All shards read one input: the first to start records the source's file list and revision
  (a Hub commit) under `out` (`_work/input.json`), and every shard, retry and later run on that
  `out` reads that list at that revision; `dedup` and `merge` refuse shards that read another.
  To read a newer revision, give another `out`. A Hub that does not answer fails a shard with
  exit 3 (retried); not found or no access, exit 2 (not retried).
* `announce` updates the `multiplt_corpus_functions` Asset, its event extra naming
  `functions_uri` (`<out>/functions`), `source` and `rows`; `multiplt_testgen` runs on it.
  When no function was kept, `announce` is skipped with that message and nothing downstream runs.
* A conf key that is no Param, or a relative local path in `source`, `out` or `benchmarks`
  (give an absolute path or a URI), fails `plan` before any shard runs; no retry.
* Scale-out is the executor's: on a Celery or Kubernetes executor the mapped shard tasks spread
  over machines; storage must then be shared (`s3://`).
"""

with DAG(
    dag_id="multiplt_corpus",
    description="Python corpus -> filtered, decontaminated, deduplicated functions",
    schedule=None,
    start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    max_active_runs=2,
    tags=["multiplt", "corpus"],
    default_args={"owner": "multiplt", "retries": 1,
                  "retry_delay": datetime.timedelta(seconds=30)},
    params={name: Param(**schema) for name, schema in CORPUS.items()},
    doc_md=DOC,
) as dag:

    @task
    def plan(data_uri: str, params=None, dag_run=None) -> dict:
        """The command line of every shard, dedup bucket and the merge (no I/O); a conf key that
        is no Param, or a relative local path, fails it (no retry)."""
        from airflow.sdk.exceptions import AirflowFailException
        from multiplt_pipelines import checks
        from multiplt_pipelines.corpus import CORPUS, corpus_plan

        try:
            checks.known_keys(dag_run.conf, CORPUS, "multiplt_corpus")
            checks.corpus(dict(params))
        except checks.BadParams as reason:
            raise AirflowFailException(str(reason)) from None
        return corpus_plan(dict(params), data_uri)

    @task
    def shard_commands(commands: dict) -> list[list[str]]:
        return commands["shards"]

    @task
    def dedup_commands(commands: dict) -> list[list[str]]:
        return commands["dedup"]

    @task
    def merge_command(commands: dict) -> list[list[str]]:
        return commands["merge"]

    commands = plan(SETTINGS.data_uri)
    shards = stage_task_mapped("build_shard", shard_commands(commands))
    dedup = stage_task_mapped("dedup", dedup_commands(commands))
    merge = stage_task_mapped("merge", merge_command(commands))

    @task(outlets=[FUNCTIONS])
    def announce(commands: dict, params=None, outlet_events=None) -> dict:
        """The functions Asset event: URI, source and rows of the merged corpus (skipped if empty)."""
        from airflow.sdk.exceptions import AirflowSkipException
        from multiplt_pipelines.chain import EmptyInput
        from multiplt_pipelines.corpus import functions_announcement

        try:
            extra = functions_announcement(commands["out"], params["source"])
        except EmptyInput as reason:
            raise AirflowSkipException(str(reason)) from None
        outlet_events[FUNCTIONS].extra = extra
        return extra

    shards >> dedup >> merge >> announce(commands)
