"""The main job (scripts/embedded_airflow.py main-job) when no chosen language is a translation
target (`--languages py`, the README's CI run): multiplt_translate and multiplt_finetune stay
paused with no Variable, the chain stops after testgen without waiting for them, the base model
is still evaluated, and the report says why translation and fine-tuning did not run. Against a
simulated REST API that queues Asset-triggered runs as Airflow does (none for a paused DAG) and
fails a translate run whose Variable has no language (its Param refuses `languages: []`)."""

from __future__ import annotations

import datetime

import pytest

from multiplt_airflow import chain_job
from tests.support.simulated_airflow import SimulatedAirflow, run_main_job

TARGETS = "jl, lua, ml, r, rkt"  # the registry's translation targets, in its order


def _main_job(tmp_path, monkeypatch, languages: str, paused: bool):
    # every runtime installed: the hint names every target, whatever this machine has
    from multiplt.execution import preflight

    monkeypatch.setattr(preflight, "missing_binaries", lambda lang, unsafe=False: [])
    monkeypatch.setenv("AIRFLOW__MULTIPLT__RUNTIME", "local")
    client = SimulatedAirflow(paused=paused)
    return run_main_job(tmp_path, monkeypatch, languages, client), client


@pytest.mark.parametrize("paused", [True, False], ids=["fresh-deployment", "after-a-job-that-translated"])
def test_py_alone_stops_after_testgen_and_says_why(tmp_path, monkeypatch, capsys, paused):
    rc, client = _main_job(tmp_path, monkeypatch, "py", paused)
    out = capsys.readouterr().out
    assert rc == 0, out
    # translate and finetune not armed: paused (even if an earlier job unpaused them), no Variable
    assert client.paused["multiplt_translate"] and client.paused["multiplt_finetune"]
    assert not any(client.paused[d] for d in ("multiplt_testgen", "multiplt_evaluate",
                                              "multiplt_publish"))
    assert "multiplt_translate" not in client.job_set
    assert "multiplt_finetune" not in client.job_set
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
    # the report's last line (then only the Variables set back)
    assert out.rstrip().splitlines()[-2:] == [
        f"translation and fine-tuning did not run: {reason} (add one to --languages)",
        "Airflow Variables multiplt_testgen, multiplt_publish set back to what they were before "
        "the job (deleted: multiplt_testgen, multiplt_publish)"]
    assert "pass@k of /m" in out


def test_a_target_among_the_languages_arms_translate_and_finetune(tmp_path, monkeypatch, capsys):
    rc, client = _main_job(tmp_path, monkeypatch, "py,lua", paused=True)
    out = capsys.readouterr().out
    assert rc == 0, out
    assert not any(client.paused[d] for d in chain_job.CHAIN[1:])
    assert client.job_set["multiplt_translate"]["languages"] == ["lua"]
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

    def job(paused):
        job = chain_job.ChainJob(since, "file:///d/j", paused)
        job.add_root("multiplt_testgen", "t1")
        return job

    runs = chain_job.follow(Client(), job(chain_job.NEED_TARGETS), timeout=30)
    assert runs["multiplt_translate"] == [] and len(runs["multiplt_testgen"]) == 1
    with pytest.raises(TimeoutError, match="multiplt_translate has no run after it"):
        chain_job.follow(Client(), job(()), timeout=30)
