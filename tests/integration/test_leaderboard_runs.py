"""The Datasets page's run links from Airflow's own database: asset events written through
Airflow's models are read by the plugin's query and matched to the datasets they announced."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))

pytestmark = pytest.mark.slow


def test_asset_events_in_the_database_link_the_runs(airflow_db, tmp_path):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from multiplt.results import dataset_runs, datasets
    from multiplt_leaderboard import app as app_module
    from tests.support.chain_folders import write_chain

    root = f"file://{tmp_path}/runs"
    write_chain(root)
    with create_session() as session:
        racket = AssetModel(name=f"multiplt_dataset_rkt_{tmp_path.name}", uri=f"{root}/translate/data/racket")
        other = AssetModel(name=f"other_{tmp_path.name}", uri=f"{root}/translate")
        session.add_all([racket, other])
        session.flush()
        session.add_all([
            AssetEvent(asset_id=racket.id, source_dag_id="multiplt_translate", source_run_id="manual__t1",
                       extra={"dataset_uri": f"{root}/translate", "lang": "rkt"}),
            AssetEvent(asset_id=other.id, source_dag_id="multiplt_evaluate", source_run_id="manual__e1",
                       extra={})])
    events = app_module._asset_events()
    mine = [e for e in events if e["run_id"] == "manual__t1"]
    assert len(mine) == 1 and mine[0]["uri"] == f"{root}/translate/data/racket"
    assert mine[0]["extra"]["lang"] == "rkt" and isinstance(mine[0]["timestamp"], str)
    assert not [e for e in events if e["dag_id"] == "multiplt_evaluate"]  # only the dataset DAGs
    found = {d.title: d for d in datasets.discover(root)}
    assert [r["run_id"] for r in dataset_runs.runs_for(found["translation racket"], events)] == ["manual__t1"]
    assert dataset_runs.runs_for(found["translation lua"], events) == []
