"""multiplt_watch: fine-tune and evaluate every new base model the Hub watcher announces.

Wiring only: scheduled on the new-base-model Asset, whose AssetWatcher runs NewModelTrigger
(plugins/multiplt_airflow/watch_trigger.py) in the triggerer; `plan` turns the triggering
events' model ids into `multiplt_finetune` and `multiplt_evaluate` runs.
"""

from __future__ import annotations

import datetime

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, AssetWatcher, Param, task
from multiplt_airflow.watch_trigger import NewModelTrigger
from multiplt_pipelines import assets
from multiplt_pipelines.watching import WATCH

NEW_BASE_MODEL = assets.new_base_model(
    [AssetWatcher(name="hub_new_models",
                  trigger=NewModelTrigger(variable="multiplt_watch", params=sorted(WATCH)))])

DOC = """
### Rerun when a new base model appears on the Hub

The watcher polls the Hub's model listing for the watch list in the Airflow Variable
`multiplt_watch` (a JSON object: `authors` and/or `search`, a name `pattern` such as
`starcoder*`, `poll_interval` seconds, optional `endpoint`), and announces each model created
after its first poll (the baseline) that it has not seen, once its default branch holds
`config.json` and weights (a repo is created before its upload: it waits, checked at every
poll, for up to `pending_hours`), at the commit it then holds. Each announced model gets, at
that commit:

* a `multiplt_evaluate` run of the base model on `evaluate_languages` (`revision` = the commit;
  under `experiment` when it is fine-tuned, so its scores start the checkpoints' lines on the
  leaderboard);
* a `multiplt_finetune` run (`base_revision` = the commit, so it trains into folders named
  with it, `<base>@<commit's first 12>-<experiment>-<lang>`, never a re-created repo's earlier
  ones) on `finetune_languages` (none by default; with the default `dataset`, only the
  languages it has a split for), whose checkpoints are evaluated and then published by
  `multiplt_publish` through the Assets.

The settings of those runs are this DAG's Params, overridden by the same keys in the
`multiplt_watch` Variable (for the watcher's runs; not the watch list's own keys, so its
`limit`, models per listing, never limits the evaluations' problems) or by a manual run's conf
(`model` = the model to run for). `plan` refuses a value those runs would refuse, naming the
Variable when it came from there. The watcher runs only while this DAG is unpaused.
"""

with DAG(
    dag_id="multiplt_watch",
    description="Fine-tune and evaluate new base models announced by the Hub watcher",
    schedule=[NEW_BASE_MODEL],
    start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    max_active_runs=4,
    tags=["multiplt", "watch", "evaluation", "training"],
    default_args={"owner": "multiplt", "retries": 1,
                  "retry_delay": datetime.timedelta(minutes=1)},
    params={name: Param(**schema) for name, schema in WATCH.items()},
    doc_md=DOC,
) as dag:

    @task
    def plan(params=None, dag_run=None, run_id=None, triggering_asset_events=None) -> dict:
        """The finetune and evaluate runs (conf + run id) of every announced model; a key of
        the conf or of the Variable that is neither a Param nor (Variable) a watch-list key, or
        a value the triggered runs would refuse (watching.check_watch: e.g. a finetune language
        the dataset has no split for), fails it (no retry), naming the Variable when the value
        came from it."""
        from airflow.sdk import Variable
        from airflow.sdk.exceptions import AirflowFailException
        from multiplt_pipelines import checks, publishing, watching

        variable = Variable.get("multiplt_watch", default=None, deserialize_json=True)
        try:
            settings, from_variable = watching.watch_run_settings(
                dict(params), dict(dag_run.conf or {}), variable)
            events = publishing.asset_events(triggering_asset_events)
            models = watching.watch_models(settings, events)
            revisions = watching.watch_revisions(settings, events)
            with checks.variable_source(from_variable, "multiplt_watch"):
                watching.check_watch(settings, models)
        except checks.BadParams as reason:
            raise AirflowFailException(str(reason)) from None
        if not models:
            raise ValueError("no model to run for: no new-model event and no `model` Param")
        described = [f"{m} at {revisions[m]}" if m in revisions else m for m in models]
        print(f"new base models: {', '.join(described)}")
        return watching.watch_triggers(settings, models, run_id, revisions)

    @task
    def finetune_runs(runs: dict) -> list[dict]:
        return runs["finetune"]

    @task
    def evaluate_runs(runs: dict) -> list[dict]:
        return runs["evaluate"]

    runs = plan()
    TriggerDagRunOperator.partial(task_id="finetune", trigger_dag_id="multiplt_finetune",
                                  reset_dag_run=False, skip_when_already_exists=True
                                  ).expand_kwargs(finetune_runs(runs))
    TriggerDagRunOperator.partial(task_id="evaluate", trigger_dag_id="multiplt_evaluate",
                                  reset_dag_run=False, skip_when_already_exists=True
                                  ).expand_kwargs(evaluate_runs(runs))
