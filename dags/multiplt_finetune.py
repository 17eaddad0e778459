"""multiplt_finetune: train a base model per language (a checkpoint every epoch), then evaluate
every checkpoint of the training manifests (and the base model as epoch 0) with multiplt_evaluate.

Wiring only: scheduled on the per-language dataset Assets of multiplt_translate; `settings`
resolves the run's settings (Params, the `multiplt_finetune` Variable, the triggering dataset
events' languages and `dataset_uri`s); training is one `multiplt train` command per language
through the stage runtime; `plan` turns the settings into those command lines; `checkpoints`
reads the manifests the training wrote (`<out>/manifest.jsonl`) and names each checkpoint
explicitly in its evaluation's conf.
"""

from __future__ import annotations

import datetime

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, AssetAny, Param, task
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

Runs when `multiplt_translate` announces a language's dataset (`multiplt_dataset_<lang>`): each
announced language is trained on the event's `dataset_uri` (the newest event per language;
languages announced with 0 rows, or whose dataset holds no row of the language's split, are
left out, and with none left the run is skipped at `settings` with that message). An Asset-triggered run has no conf: its other settings are the
Param defaults overridden by the keys of the Airflow Variable `multiplt_finetune` (a JSON object,
e.g. `{"base_model": "bigcode/starcoderbase-1b", "epochs": 1}`). A run started by hand trains
every language of `languages` on `dataset` (`{lang}` = each language code).

For each language: `multiplt train` the `base_model` with `recipe` (a name in multiplt/recipes/,
an absolute .yaml path, or a file:// or s3:// URI) on its dataset (GPU task, pool `gpu`),
checkpointing every epoch under `<data_uri>/training/<base>-<experiment>-<lang>/` (the
`training_root` Param moves it) with tags `LANG-EXPERIMENT-epochN`. A run with a
`base_revision` trains into `<base>@<revision>-<experiment>-<lang>/` (a commit by its first 12
characters; a revision with characters a folder name must not hold, or longer than 20, as 12
of them and a hash), so the same base at another revision gets a folder of its own instead of
`multiplt train`'s refusal to resume a folder started at another `base_revision`; a run without
one uses the folder it always did, and a rerun of the same settings resumes there.
An output holds one dataset's fine-tune: when one already holds checkpoints (all epochs done or
not) trained on another dataset than this run's (a second corpus through the chain under the
same `experiment`), `plan` fails, no retry, before any training, naming the folder, both
datasets and the fix: another `experiment` (the key of the Variable `multiplt_finetune` for
runs started by dataset events, of the Variable `multiplt_watch` for the watcher's, else the
conf), whose output and checkpoint tags are its own, or another `training_root` (the tags then
repeat: another `checkpoints_repo` for their publication); `multiplt train` itself refuses
to resume an output on another dataset. An output with no checkpoint yet is trained anew, as
`multiplt train` does.
Then every checkpoint listed in the training manifests gets its own `multiplt_evaluate` run,
whose conf names it explicitly (`model` = the training output, `revision` = the tag,
`checkpoint_uri`, `languages`, `experiment`, `epoch`), plus one run of the base model as
epoch 0 when `evaluate_base` is on. The evaluation settings (`n`, `temperature`, ...) pass
through. The leaderboard then shows pass@1 by epoch per language.

When every evaluation has succeeded, `announce_checkpoints` updates the `multiplt_checkpoints`
Asset; its event extra carries the training outputs (`outputs`: lang, output URI and dataset
each, `base_model`, `experiment`), which `multiplt_publish` publishes as tagged checkpoints.
An evaluation run that fails fails its `evaluate_checkpoints` task, and `announce_checkpoints`
then does not run (upstream_failed): nothing is announced or published until those tasks are
cleared with their downstream tasks and succeed.

Settings that training or those evaluations would refuse (an unknown recipe name; a built-in
recipe that shards with FSDP over several GPUs, `starcoderbase-15b`, `codellama-34b`,
`codellama-70b` and their `-jl-r` variants, since `train` runs one process on one GPU: those are
run by hand with `accelerate launch`, docs/training.md; on the
published dataset `nuprl/MultiPL-T`, a language it has no split for, such as `py` or a language
added to the platform; the evaluation settings `multiplt_evaluate` refuses)
fail `settings` with the command's message, before any training; no retry. A value taken from
the Variable is named as such (`... (from the Airflow Variable multiplt_finetune)`).

`multiplt_evaluate` must be unpaused: a trigger into a paused DAG fails instead of waiting.
"""

with DAG(
    dag_id="multiplt_finetune",
    description="Fine-tune per language, then evaluate every epoch's checkpoint",
    schedule=AssetAny(*assets.datasets(SETTINGS)),
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
    def settings(params=None, dag_run=None, triggering_asset_events=None) -> dict:
        """Params <- the multiplt_finetune Variable (Asset-triggered runs) <- conf, with the
        languages and datasets of the triggering dataset events; languages whose dataset holds
        no row are left out (skipped when none is left). Settings that training or the
        evaluations after it would refuse fail the task, before any training."""
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
        from multiplt_pipelines import checks
        from multiplt_pipelines.chain import (EmptyInput, asset_events, chained_datasets, from_the_event,
                                              nonempty_datasets, run_settings)
        from multiplt_pipelines.params import FINETUNE

        try:
            given, from_variable = run_settings("multiplt_finetune", params, dag_run, FINETUNE)
            resolved, datasets = chained_datasets(given, asset_events(triggering_asset_events))
            from_variable = from_the_event(from_variable, given, resolved, "languages")
            with checks.variable_source(from_variable, "multiplt_finetune"):
                checks.training(resolved, datasets, local=SETTINGS.runtime == "local")
            datasets = nonempty_datasets(datasets)
            resolved["languages"] = [lang for lang in resolved["languages"] if lang in datasets]
        except EmptyInput as reason:
            raise AirflowSkipException(str(reason)) from None
        except checks.BadParams as reason:
            raise AirflowFailException(str(reason)) from None
        print(f"training {', '.join(f'{k} on {v}' for k, v in datasets.items())}")
        return {**resolved, "datasets": datasets}

    @task
    def plan(data_uri: str, settings: dict) -> list[dict]:
        """The `train` command line and output URI of each language. Reads each output's run
        config and manifest: a plain-named output begun at this run's base_revision is resumed
        (before revisions got folders); an output with checkpoints of another dataset fails the
        task, no retry, before any training (a storage error fails it with a retry)."""
        from airflow.sdk.exceptions import AirflowFailException
        from multiplt_pipelines.plans import (TrainingOutputTaken, started_revision, trained_dataset,
                                              training_plan)

        try:
            return training_plan(settings, data_uri, started=started_revision, trained=trained_dataset)
        except TrainingOutputTaken as taken:
            raise AirflowFailException(str(taken)) from None

    @task
    def checkpoints(entries: list[dict], settings: dict, run_id=None) -> list[dict]:
        """One trigger (conf + run id) per checkpoint in the training manifests, read from storage."""
        from multiplt.storage import manifest
        from multiplt_pipelines.plans import checkpoint_confs, trigger_run_id

        manifests = [{"lang": e["lang"], "out": e["out"], "rows": manifest.read(e["out"])}
                     for e in entries]
        confs = checkpoint_confs(settings, manifests)
        return [{"conf": conf, "trigger_run_id": trigger_run_id(run_id, conf)} for conf in confs]

    @task(outlets=[CHECKPOINTS])
    def announce_checkpoints(entries: list[dict], settings: dict, outlet_events=None) -> list[dict]:
        """The checkpoints Asset event, carrying the training outputs that have checkpoints."""
        from airflow.sdk.exceptions import AirflowSkipException
        from multiplt.storage import manifest

        outputs = [{"lang": e["lang"], "out": e["out"], "dataset_uri": e["dataset"]}
                   for e in entries if manifest.read(e["out"])]
        if not outputs:
            raise AirflowSkipException("no training output has a checkpoint")
        outlet_events[CHECKPOINTS].extra = {"outputs": outputs, "base_model": settings["base_model"],
                                            "experiment": settings["experiment"]}
        return outputs

    resolved = settings()
    entries = plan(SETTINGS.data_uri, resolved)
    train = stage_task_mapped("train", entries.map(train_command), gpu=True)
    # The manifests exist only once training is over: read them after it, not beside it.
    confs = checkpoints(entries, resolved)
    train >> confs
    evaluate = TriggerDagRunOperator.partial(
        task_id="evaluate_checkpoints",
        trigger_dag_id="multiplt_evaluate",
        wait_for_completion=True,
        deferrable=True,
        poke_interval=float(SETTINGS.trigger_poke_seconds),
        reset_dag_run=True,
        fail_when_dag_is_paused=True,
    ).expand_kwargs(confs)

    train >> evaluate >> announce_checkpoints(entries, resolved)
