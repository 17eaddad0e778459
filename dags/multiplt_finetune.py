"""multiplt_finetune: train a base model per language (a checkpoint every epoch), then evaluate
every checkpoint of the training manifests (and the base model as epoch 0) with multiplt_evaluate.

Wiring only: training is one `multiplt train` command per language through the stage runtime;
`plan` turns the Params into those command lines; `checkpoints` reads the manifests the training
wrote (`<out>/manifest.jsonl`) and names each checkpoint explicitly in its evaluation's conf.
"""

from __future__ import annotations

import datetime

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, Param, task
from multiplt_airflow import settings as multiplt_settings
from multiplt_airflow.stage import stage_task_mapped
from multiplt_pipelines import assets
from multiplt_pipelines import params as schemas

SETTINGS = multiplt_settings.load()  # airflow.cfg [multiplt]: no database, no network
CHECKPOINTS = assets.checkpoints(SETTINGS)


def train_command(entry: dict) -> list[str]:
    """One language's `multiplt train` command line (XComArg.map over the plan)."""
    return entry["train"]


DOC = """
### Fine-tune a base model on MultiPL-T data, then evaluate every epoch

For each language in `languages`: `multiplt train` the `base_model` with `recipe` on `dataset`
(GPU task, pool `gpu`), checkpointing every epoch under
`<data_uri>/training/<base>-<experiment>-<lang>/` with tags `LANG-EXPERIMENT-epochN`.
Then every checkpoint listed in the training manifests gets its own `multiplt_evaluate` run,
whose conf names it explicitly (`model` = the training output, `revision` = the tag,
`checkpoint_uri`, `languages`, `experiment`, `epoch`), plus one run of the base model as
epoch 0 when `evaluate_base` is on. The evaluation settings (`n`, `temperature`, ...) pass
through. The leaderboard then shows pass@1 by epoch per language.

When every evaluation has finished, `announce_checkpoints` updates the `multiplt_checkpoints`
Asset; its event extra carries the training outputs (`outputs`: lang and output URI each,
`base_model`, `experiment`), which `multiplt_publish` publishes as tagged checkpoints.

`multiplt_evaluate` must be unpaused: a trigger into a paused DAG fails instead of waiting.
"""

with DAG(
    dag_id="multiplt_finetune",
    description="Fine-tune per language, then evaluate every epoch's checkpoint",
    schedule=None,
    start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["multiplt", "training", "evaluation"],
    default_args={"owner": "multiplt", "retries": 1,
                  "retry_delay": datetime.timedelta(minutes=2)},
    params={name: Param(**schema) for name, schema in schemas.FINETUNE.items()},
    doc_md=DOC,
) as dag:

    @task
    def plan(data_uri: str, params=None) -> list[dict]:
        """The `train` command line and output URI of each language (no I/O)."""
        from multiplt_pipelines.plans import training_plan

        return training_plan(dict(params), data_uri)

    @task
    def checkpoints(entries: list[dict], params=None, run_id=None) -> list[dict]:
        """One trigger (conf + run id) per checkpoint in the training manifests, read from storage."""
        from multiplt.storage import manifest
        from multiplt_pipelines.plans import checkpoint_confs, trigger_run_id

        manifests = [{"lang": e["lang"], "out": e["out"], "rows": manifest.read(e["out"])}
                     for e in entries]
        confs = checkpoint_confs(dict(params), manifests)
        return [{"conf": conf, "trigger_run_id": trigger_run_id(run_id, conf)} for conf in confs]

    @task(outlets=[CHECKPOINTS])
    def announce_checkpoints(entries: list[dict], params=None, outlet_events=None) -> list[dict]:
        """The checkpoints Asset event, carrying the training outputs that have checkpoints."""
        from airflow.sdk.exceptions import AirflowSkipException
        from multiplt.storage import manifest

        outputs = [{"lang": e["lang"], "out": e["out"]} for e in entries if manifest.read(e["out"])]
        if not outputs:
            raise AirflowSkipException("no training output has a checkpoint")
        outlet_events[CHECKPOINTS].extra = {"outputs": outputs, "base_model": params["base_model"],
                                            "experiment": params["experiment"]}
        return outputs

    entries = plan(SETTINGS.data_uri)
    train = stage_task_mapped("train", entries.map(train_command), gpu=True)
    evaluate = TriggerDagRunOperator.partial(
        task_id="evaluate_checkpoints",
        trigger_dag_id="multiplt_evaluate",
        wait_for_completion=True,
        deferrable=True,
        poke_interval=60,
        reset_dag_run=True,
        fail_when_dag_is_paused=True,
    ).expand_kwargs(checkpoints(entries))

    train >> evaluate >> announce_checkpoints(entries)
