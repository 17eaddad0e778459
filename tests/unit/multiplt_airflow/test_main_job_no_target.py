"""The main job (scripts/embedded_airflow.py main-job) when no chosen language is a translation
target (`--languages py`, the README's CI run): multiplt_translate and multiplt_finetune stay
paused with no Variable, the chain stops after testgen without waiting for them, the base model
is still evaluated, and the report says why translation and fine-tuning did not run. Against a
simulated REST API that queues Asset-triggered runs as Airflow does (none for a paused DAG) and
fails a translate run whose Variable has no language (its Param refuses `languages: []`)."""

from __future__ import annotations

import argparse
import datetime
import json

import pytest

from multiplt_airflow import chain_job
from tests.support.airflow import load_launcher

TARGETS = "jl, lua, ml, r, rkt"  # the registry's translation targets, in its order
BASE_RUN = "file:///d/evaluate/base"


class SimulatedAirflow:
    """Paused flags, Variables, runs and Asset events of the chain DAGs. Every run ends at once
    (success) with its DAG's events; each event queues one run of every unpaused consumer
    (chain_job.consumers, the DAGs' schedules), as Airflow's AssetManager does."""

    def __init__(self, paused: bool):
        self.paused = {dag_id: paused for dag_id in chain_job.CHAIN}
        self.variables: dict[str, dict] = {}
        self.runs: dict[str, list[dict]] = {dag_id: [] for dag_id in chain_job.CHAIN}
        self.events: dict[str, list[dict]] = {}
        self.clock = datetime.datetime.now(datetime.timezone.utc)

    def tick(self) -> str:
        self.clock += datetime.timedelta(seconds=1)
        return self.clock.isoformat()

    # the RestClient methods main_job calls
    def wait_for_dag(self, dag_id, timeout=180):
        return {"dag_id": dag_id}

    def set_variable(self, key, value, description=""):
        self.variables[key] = json.loads(value)

    def set_paused(self, dag_id, paused):
        self.paused[dag_id] = paused

    def trigger(self, dag_id, conf=None, unpause=True, **kw):
        if unpause:
            self.paused[dag_id] = False
        self._run(dag_id, conf)
        return {"dag_run_id": self.runs[dag_id][-1]["dag_run_id"]}

    def task_instances(self, dag_id, run_id):
        return []

    def request(self, method, path, body=None, ok=(200, 201, 204)):
        if path.startswith("/api/v2/assets/events"):
            run_id = path.split("source_run_id=")[1].split("&")[0]
            return {"asset_events": self.events.get(run_id, [])}
        return {"dag_runs": list(self.runs[path.split("/")[4]])}

    # what the scheduler and the DAGs would do
    def _emits(self, dag_id: str, conf: dict | None) -> tuple[str, list[dict]]:
        if dag_id == "multiplt_corpus":
            return "success", [{"name": "multiplt_corpus_functions"}]
        if dag_id == "multiplt_testgen":  # a real teacher: testgen kept rows
            return "success", [{"name": "multiplt_testgen_tests", "extra": {"rows": 4}}]
        if dag_id == "multiplt_translate":
            langs = self.variables["multiplt_translate"]["languages"]
            if not langs:  # the Param's minItems refuses the Variable: plan fails
                return "failed", []
            return "success", [{"name": f"multiplt_dataset_{lang}"} for lang in langs]
        if dag_id == "multiplt_finetune":
            return "success", [{"name": "multiplt_checkpoints", "extra": {"outputs": []}}]
        if dag_id == "multiplt_evaluate":
            return "success", [{"name": "multiplt_results", "extra": {"runs": [{"run": BASE_RUN}]}}]
        return "success", []

    def _run(self, dag_id: str, conf: dict | None) -> None:
        run_id = f"{dag_id}_{len(self.runs[dag_id]) + 1}"
        self.runs[dag_id].append({"dag_run_id": run_id, "dag_id": dag_id,
                                  "queued_at": self.tick(), "state": None})
        state, events = self._emits(dag_id, conf)
        self.runs[dag_id][-1]["state"] = state
        self.events[run_id] = [{**e, "timestamp": self.tick()} for e in events]
        for event in self.events[run_id]:
            for consumer in chain_job.consumers(event["name"]):
                if not self.paused[consumer]:
                    self._run(consumer, None)


def _store(path) -> str:
    import polars as pl

    from multiplt.results.schema import COLUMNS, polars_schema

    row = {**{c: None for c in COLUMNS}, "run_id": "base@x", "dataset": "base", "run_uri": BASE_RUN,
           "model": "/m", "experiment": "main_job", "lang": "py", "epoch": 0, "k": 1,
           "estimate": 0.5, "num_problems": 1, "created_at": "2020-01-01T00:00:00+00:00"}
    pl.DataFrame([row], schema=polars_schema()).write_parquet(path)
    return str(path)


def _main_job(tmp_path, monkeypatch, languages: str, paused: bool):
    launcher = load_launcher()
    monkeypatch.setattr(chain_job.time, "sleep", lambda s: None)
    monkeypatch.setenv("AIRFLOW__MULTIPLT__DATA_URI", (tmp_path / "data").as_uri())
    monkeypatch.setenv("AIRFLOW__MULTIPLT__RESULTS_STORE", _store(tmp_path / "results.parquet"))
    client = SimulatedAirflow(paused=paused)
    airflow = argparse.Namespace(client=client, base_url="http://127.0.0.1:1",
                                 data_dir=str(tmp_path / "data"),
                                 config_path=str(tmp_path / "airflow.cfg"))
    args = argparse.Namespace(model="/m", languages=languages, source="stdlib", corpus_limit=None,
                              n=1, max_new_tokens=8, limit=1, timeout=30, publish_repo=None,
                              teacher_generation=None)
    return launcher.main_job(airflow, args), client


@pytest.mark.parametrize("paused", [True, False], ids=["fresh-deployment", "after-a-job-that-translated"])
def test_py_alone_stops_after_testgen_and_says_why(tmp_path, monkeypatch, capsys, paused):
    rc, client = _main_job(tmp_path, monkeypatch, "py", paused)
    out = capsys.readouterr().out
    assert rc == 0, out
    # translate and finetune not armed: paused (even if an earlier job unpaused them), no Variable
    assert client.paused["multiplt_translate"] and client.paused["multiplt_finetune"]
    assert not any(client.paused[d] for d in ("multiplt_testgen", "multiplt_evaluate",
                                              "multiplt_publish"))
    assert "multiplt_translate" not in client.variables
    assert "multiplt_finetune" not in client.variables
    # testgen announced tests, nothing translated them, and the job did not wait for it
    assert [r["state"] for r in client.runs["multiplt_testgen"]] == ["success"]
    assert client.runs["multiplt_translate"] == [] and client.runs["multiplt_finetune"] == []
    # the base model was evaluated on py, and publish ran on its results with no dataset
    assert client.runs["multiplt_evaluate"][0]["state"] == "success"
    assert [r["state"] for r in client.runs["multiplt_publish"]] == ["success"]
    reason = f"no translation target among the chosen languages (py); the translation targets are {TARGETS}"
    assert f"translate: did not run: {reason}" in out
    assert f"finetune: did not run (no translation to fine-tune on): {reason}" in out
    assert "(no dataset: translation did not run)" in out
    assert out.rstrip().endswith(f"translation and fine-tuning did not run: {reason} (add one to --languages)")
    assert "pass@k of /m" in out


def test_a_target_among_the_languages_arms_translate_and_finetune(tmp_path, monkeypatch, capsys):
    rc, client = _main_job(tmp_path, monkeypatch, "py,lua", paused=True)
    out = capsys.readouterr().out
    assert rc == 0, out
    assert not any(client.paused[d] for d in chain_job.CHAIN[1:])
    assert client.variables["multiplt_translate"]["languages"] == ["lua"]
    assert [r["state"] for r in client.runs["multiplt_translate"]] == ["success"]
    assert [r["state"] for r in client.runs["multiplt_finetune"]] == ["success"]
    assert "did not run: no translation target" not in out


def test_chain_settings_and_follow_leave_the_paused_dags_out():
    assert chain_job.paused_dags(["py"], ["lua", "rkt"]) == ["multiplt_translate", "multiplt_finetune"]
    assert chain_job.paused_dags(["py", "rkt"], ["lua", "rkt"]) == []
    got = chain_job.chain_settings(model="/m", languages=["py"], targets=["lua", "rkt"],
                                   root="file:///d/j", publish_dir="/d/pub", n=1,
                                   max_new_tokens=8, limit=None)
    assert sorted(got) == ["multiplt_publish", "multiplt_testgen"]

    # a tests event whose consumer the job left paused is not waited for
    old = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=300)).isoformat()

    class Client:
        def request(self, method, path, body=None):
            if path.startswith("/api/v2/assets/events"):
                return {"asset_events": [{"name": "multiplt_testgen_tests", "timestamp": old}]}
            if path.split("/")[4] == "multiplt_testgen":
                return {"dag_runs": [{"dag_run_id": "t1", "queued_at": old, "state": "success"}]}
            return {"dag_runs": []}

    since = datetime.datetime.fromisoformat(old) - datetime.timedelta(seconds=1)
    runs = chain_job.follow(Client(), since, timeout=30, paused=chain_job.NEED_TARGETS)
    assert runs["multiplt_translate"] == [] and len(runs["multiplt_testgen"]) == 1
    with pytest.raises(TimeoutError, match="multiplt_translate has no run after it"):
        chain_job.follow(Client(), since, timeout=30)
