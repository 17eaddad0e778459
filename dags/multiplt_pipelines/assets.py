"""The Assets that chain the pipelines, by name (so a DAG can schedule on another's Asset
without knowing its URI): checkpoints (multiplt_finetune), results (multiplt_evaluate), one
dataset per language (multiplt_translate: `multiplt_dataset_<lang>`, the folder in the event
extra's `dataset_uri`), and the new-base-model Asset of the watcher."""

from __future__ import annotations

from airflow.sdk import Asset

from multiplt_pipelines.params import TARGET_LANGUAGES
from multiplt_pipelines.publishing import DATASET_ASSET_PREFIX
from multiplt_pipelines.watching import NEW_BASE_MODEL

CHECKPOINTS = "multiplt_checkpoints"
RESULTS = "multiplt_results"


def checkpoints(settings) -> Asset:
    return Asset(name=CHECKPOINTS, uri=settings.data_uri.rstrip("/") + "/training")


def dataset_refs() -> list:
    return [Asset.ref(name=f"{DATASET_ASSET_PREFIX}{lang}") for lang in TARGET_LANGUAGES]


def new_base_model(watchers) -> Asset:
    return Asset(name=NEW_BASE_MODEL, uri="multiplt://hub/new-base-models", watchers=watchers)
