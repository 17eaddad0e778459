"""The Assets of the chain are declared once (dags/multiplt_pipelines/assets.py): the DAG that
updates an Asset and those scheduled on it name it alike, name and URI. An `s3://` data root or
results store gives `s3://` Asset URIs, which Airflow checks with the `s3` Asset URI handler of
apache-airflow-providers-amazon: one without a bucket fails the DAG's import at once (without
the provider it was taken as it is, and the stages failed on it later)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.dags.test_pipeline_plans import load_dag
from multiplt_pipelines import assets  # noqa: E402 (dags/ is on sys.path)


def _assets(schedule) -> list:
    """The Assets of a schedule: one, a list, AssetAny/AssetAll."""
    if isinstance(schedule, (list, tuple)):
        return [a for item in schedule for a in _assets(item)]
    if hasattr(schedule, "objects"):
        return _assets(list(schedule.objects))
    return [schedule]


def _scheduled_on(dag) -> set[tuple[str, str]]:
    return {(asset.name, asset.uri) for asset in _assets(dag.schedule)}


def _updated_by(dag) -> set[tuple[str, str]]:
    return {(asset.name, asset.uri) for task in dag.tasks for asset in task.outlets or []}


def test_an_asset_is_the_same_where_it_is_updated_and_where_a_dag_is_scheduled_on_it():
    testgen, translate = load_dag("multiplt_testgen"), load_dag("multiplt_translate")
    finetune, publish = load_dag("multiplt_finetune"), load_dag("multiplt_publish")
    evaluate = load_dag("multiplt_evaluate")
    tests = _scheduled_on(translate)
    assert len(tests) == 1 and tests <= _updated_by(testgen)
    datasets = {a for a in _updated_by(translate) if a[0].startswith("multiplt_dataset_")}
    assert len(datasets) == 5 and datasets == _scheduled_on(finetune)
    assert datasets | {a for a in _updated_by(evaluate) | _updated_by(finetune)
                       if a[0] in ("multiplt_results", "multiplt_checkpoints")} == _scheduled_on(publish)


def test_s3_asset_uris_name_their_bucket():
    s3 = SimpleNamespace(data_uri="s3://bucket/runs/", results_store="s3://bucket/results/r.parquet")
    assert (assets.results(s3).uri, assets.tests(s3).uri, assets.functions(s3).uri) == (
        "s3://bucket/results/r.parquet", "s3://bucket/runs/testgen/tests",
        "s3://bucket/runs/corpus/functions")
    assert assets.dataset(s3, "lua").uri.startswith("s3://bucket/runs/translate/")
    bucketless = SimpleNamespace(data_uri="s3:///runs", results_store="s3:///results.parquet")
    for make in (assets.results, assets.tests, assets.checkpoints):
        with pytest.raises(ValueError, match="URI format s3:// must contain a bucket name"):
            make(bucketless)
