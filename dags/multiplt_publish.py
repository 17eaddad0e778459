"""multiplt_publish: publish datasets, tagged checkpoints and the results store to the Hub.

Wiring only: scheduled on the dataset, checkpoints and results Assets; each publication is a
plan task (settings and the triggering Asset events -> `multiplt publish ...` command lines, or
skipped with the reason) and one mapped `multiplt publish` stage task.
"""

from __future__ import annotations

import datetime

from airflow.sdk import DAG, Asset, AssetAny, Param, task
from multiplt_airflow import settings as multiplt_settings
from multiplt_airflow.stage import stage_task_mapped
from multiplt_pipelines import assets
from multiplt_pipelines.publishing import PUBLISH

SETTINGS = multiplt_settings.load()  # airflow.cfg [multiplt]: no database, no network
SCHEDULE = AssetAny(assets.checkpoints(SETTINGS), Asset(name=assets.RESULTS, uri=SETTINGS.results_store),
                    *assets.datasets(SETTINGS))

DOC = """
### Publish to the Hugging Face Hub

Runs when a dataset (`multiplt_dataset_<lang>`), checkpoints (`multiplt_checkpoints`, from
`multiplt_finetune`) or results (`multiplt_results`, from `multiplt_evaluate`) Asset is updated,
or by hand. Each publication is skipped, with the reason in its plan task's log, unless its
repo is set: `dataset_repo`, `checkpoints_repo` (`{base}` = the base model's id with its
owner, `bigcode__starcoderbase-1b`), `results_repo`, as Params of a manual run or in the Airflow Variable `multiplt_publish` (a JSON
object of the same keys) for Asset-triggered runs; and unless a Hub token exists (the worker's
`HF_TOKEN` or the connection `huggingface_default`, password = token). With `dry_run` (a local
folder) datasets are written there instead (`multiplt publish dataset --dry-run`), with no
token, and checkpoints and results are skipped.

A key of the conf or of the Variable that is no Param, a Variable's value its Param refuses
(Airflow never checks the Variable: `"private": "false"` is refused, a boolean is `false`), a
relative local path in `dataset_uri`, `training_outputs` or `dry_run` (give an absolute path or
a URI), a `checkpoints_repo` with `{base}` for a manual run's `training_outputs` (which name
no base model), or one repo as both `dataset_repo` and `results_repo`, fails the plan tasks; no
retry. A run whose dataset Asset events name more than one dataset folder fails `plan_dataset`
(each publication would delete the other's splits from the one `dataset_repo`; with `dry_run`,
only folders of one name). A later run that publishes another dataset folder to a
`dataset_repo` already holding one fails its publish task (exit 2, nothing uploaded; the repo's
card names its source, and so does the message): use another `dataset_repo`, or replace it with
a manual run whose conf sets `force` to true and names the folder in `dataset_uri`
(`{"dataset_repo": "...", "dataset_uri": "...", "force": true}`: `multiplt publish dataset
--force`, which replaces the repo's splits with that folder's; with `dry_run`, the dry-run
folder's). `force` is for datasets only (checkpoints' tags are never moved) and only for a
manual run's conf: an Asset-triggered run never forces, and `force` true in the Variable fails
the plan tasks. A value taken from the Variable is named as such (`... (from the
Airflow Variable multiplt_publish)`).

`private` creates new repos private; a publication to an existing repo that is public fails
(exit 2, nothing uploaded): its visibility is never changed.

Every publication is idempotent: a rerun uploads only what changed. See docs/publishing.md.
"""


def _plan(kind: str, params, dag_run, triggering_asset_events) -> list[list[str]]:
    """The `multiplt publish` command lines of this run's `kind` publication. Settings: Params
    <- the multiplt_publish Variable <- conf; a key of either that is no Param, a value its Param's
    schema refuses (`"private": "false"` in the Variable), `force` true in the Variable (only a
    manual run's conf forces), a relative local path, or a `{base}` checkpoints_repo for a
    manual run's training_outputs, fails the task (no retry), naming the Variable when the value
    is its (checks.variable_source)."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
    from multiplt_airflow.credentials import HUB_CONNECTION, from_environment
    from multiplt_pipelines import checks, publishing
    from multiplt_pipelines.chain import run_settings

    events = publishing.asset_events(triggering_asset_events)
    try:
        settings, from_variable = run_settings("multiplt_publish", params, dag_run, PUBLISH)
        with checks.variable_source(from_variable, "multiplt_publish"):
            checks.schema(settings, PUBLISH)  # Airflow never validates the Variable's values
            checks.publishing(settings)
            publishing.refuse_variable_force(settings, from_variable)
            if kind == "dataset":
                commands = publishing.dataset_commands(settings, events)
            elif kind == "checkpoints":
                commands = publishing.checkpoint_commands(
                    settings, events, publishing.existing_store(SETTINGS.results_store))
            else:
                commands = publishing.results_commands(settings, events, SETTINGS.results_store)
    except checks.BadParams as reason:
        raise AirflowFailException(str(reason)) from None
    except publishing.NotPublishing as reason:
        raise AirflowSkipException(str(reason)) from None
    if not (kind == "dataset" and settings.get("dry_run")) and "HF_TOKEN" not in from_environment():
        raise AirflowSkipException(f"not publishing {kind}: no Hub token (set HF_TOKEN on the "
                                   f"workers or the connection {HUB_CONNECTION!r})")
    return commands


with DAG(
    dag_id="multiplt_publish",
    description="Publish datasets, tagged checkpoints and results to the Hugging Face Hub",
    schedule=SCHEDULE,
    start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["multiplt", "publishing"],
    default_args={"owner": "multiplt", "retries": 2,
                  "retry_delay": datetime.timedelta(minutes=5)},
    params={name: Param(**schema) for name, schema in PUBLISH.items()},
    doc_md=DOC,
) as dag:

    @task
    def plan_dataset(params=None, dag_run=None, triggering_asset_events=None) -> list[list[str]]:
        return _plan("dataset", params, dag_run, triggering_asset_events)

    @task
    def plan_checkpoints(params=None, dag_run=None, triggering_asset_events=None) -> list[list[str]]:
        return _plan("checkpoints", params, dag_run, triggering_asset_events)

    @task
    def plan_results(params=None, dag_run=None, triggering_asset_events=None) -> list[list[str]]:
        return _plan("results", params, dag_run, triggering_asset_events)

    # one publication per repo at a time: concurrent commits to one branch would conflict
    stage_task_mapped("publish_dataset", plan_dataset(), max_active_tis_per_dagrun=1)
    stage_task_mapped("publish_checkpoints", plan_checkpoints(), max_active_tis_per_dagrun=1)
    stage_task_mapped("publish_results", plan_results(), max_active_tis_per_dagrun=1)
