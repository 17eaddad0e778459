"""The Assets that chain the pipelines, each with its name and URI (from airflow.cfg's data_uri
and results_store), declared here once for the DAG that updates it and those scheduled on it:
the corpus functions (multiplt_corpus), the tests (multiplt_testgen), one dataset per language
(multiplt_translate: `multiplt_dataset_<lang>`, the folder in the event extra's
`dataset_uri`), checkpoints (multiplt_finetune), results (multiplt_evaluate), and the
new-base-model Asset of the watcher."""

from __future__ import annotations

from airflow.sdk import Asset

from multiplt_pipelines.chain import (DATASET_ASSET_PREFIX, FUNCTIONS_ASSET, RESULTS_ASSET,
                                      TESTS_ASSET)
from multiplt_pipelines.params import TARGET_LANGUAGES
from multiplt_pipelines.watching import NEW_BASE_MODEL

CHECKPOINTS = "multiplt_checkpoints"
RESULTS = RESULTS_ASSET


def functions(settings) -> Asset:
    """The corpus functions (multiplt_corpus -> multiplt_testgen)."""
    from multiplt_pipelines.testgen import functions_uri

    return Asset(name=FUNCTIONS_ASSET, uri=functions_uri(settings.data_uri))


def tests(settings) -> Asset:
    """The tests (multiplt_testgen -> multiplt_translate)."""
    from multiplt_pipelines.translation import tests_uri

    return Asset(name=TESTS_ASSET, uri=tests_uri(settings.data_uri))


def results(settings) -> Asset:
    """The results store (multiplt_evaluate -> multiplt_publish)."""
    return Asset(name=RESULTS, uri=settings.results_store)


def checkpoints(settings) -> Asset:
    return Asset(name=CHECKPOINTS, uri=settings.data_uri.rstrip("/") + "/training")


def datasets(settings) -> list[Asset]:
    """multiplt_translate's dataset Assets, name and URI as it declares them. Not name refs
    (`Asset.ref`): Airflow 3.3 starts a run on a ref's event but gives it no triggering events
    (its scheduler reads the consumed events from the DAG's Asset references only), so the run
    could not tell which dataset to train on or publish."""
    return [dataset(settings, lang) for lang in TARGET_LANGUAGES]


def dataset(settings, lang: str) -> Asset:
    """multiplt_translate's dataset Asset of the language `lang`."""
    from multiplt_pipelines.translation import dataset_asset_uri

    return Asset(name=f"{DATASET_ASSET_PREFIX}{lang}", uri=dataset_asset_uri(settings.data_uri, lang))


def new_base_model(watchers) -> Asset:
    return Asset(name=NEW_BASE_MODEL, uri="multiplt://hub/new-base-models", watchers=watchers)
