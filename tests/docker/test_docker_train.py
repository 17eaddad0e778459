"""`multiplt train`, one epoch of the tiny model, in the CPU worker image (issue 19, point 2):
started the way the docker runtime starts a GPU stage (stage_task(..., gpu=True) ->
MultipltDockerOperator on the real engine), with `[multiplt] docker_gpus = none` because this
machine has no GPU, and a file:// data root, which the runtime bind-mounts at the same path."""

from __future__ import annotations

import datetime
import json
import subprocess

import pytest

from tests.integration.test_train import TINY_RECIPE, racket_documents

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(3600)]


def test_one_epoch_of_the_tiny_model_in_the_cpu_worker(docker_engine, docker_images, tiny_model,
                                                       tmp_path, monkeypatch):
    import shutil

    from airflow.sdk import DAG

    from multiplt import storage
    from multiplt.storage import manifest
    from multiplt_airflow.docker_stage import MultipltDockerOperator
    from multiplt_airflow.stage import stage_task

    data = tmp_path / "data"
    shutil.copytree(tiny_model, data / "base")
    storage.write_jsonl(str(data / "racket.jsonl"), [{"content": d} for d in racket_documents(120)])
    for key, value in {"RUNTIME": "docker", "WORKER_IMAGE": docker_images.worker,
                       "DOCKER_GPUS": "none", "DATA_URI": f"file://{data}"}.items():
        monkeypatch.setenv(f"AIRFLOW__MULTIPLT__{key}", value)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = data / "run"
    # stage containers run as the stage user (10001), which must be able to write the data root
    # (docs/docker.md); the test's tmp_path is root's
    subprocess.run(["chown", "-R", "10001:10001", str(data)], check=True)
    with DAG(dag_id="docker_train", schedule=None, start_date=datetime.datetime(2025, 1, 1)):
        task = stage_task("train", ["train", "--dataset", str(data / "racket.jsonl"),
                                    "--base", str(data / "base"), "--lang", "rkt",
                                    "--experiment", "docker", "--out", str(out), "--epochs", "1",
                                    *TINY_RECIPE], gpu=True, network_mode="none")
    assert isinstance(task, MultipltDockerOperator)
    assert task.image == docker_images.worker and not task.device_requests
    task.execute({})

    rows = manifest.read(str(out))
    assert [r["tag"] for r in rows] == ["rkt-docker-epoch1"]
    assert rows[0]["step"] > 0 and rows[0]["uri"] == storage.join(str(out), "checkpoints", "rkt-docker-epoch1")
    config = json.loads((out / "checkpoints" / "rkt-docker-epoch1" / "config.json").read_text())
    assert config["dtype"] == "bfloat16"
    assert storage.read_jsonl(str(out / "logs" / "epoch1.jsonl")), "no training log"
