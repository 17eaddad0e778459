"""multiplt_evaluate with the docker runtime (issue 19, point 2): the embedded Airflow starts
every stage as a container of the images from scripts/build_images.sh, storage is S3 (the moto
server on 127.0.0.1, which the networked steps reach on the host's network), the backend replays
the reference solutions (completions [ok, bad]), so pass@1 must be exactly 0.5 as with the
local runtime. Every container the run starts is inspected as it starts: the sandbox run steps
have no network and, like the stage steps around them, no root."""

from __future__ import annotations

import os
import re
import threading
import uuid

import pytest

from tests.support.evaluated_airflow import evaluate_conf, replay_sources
from tests.support.airflow import task_log, wait_for_run

pytestmark = [pytest.mark.docker, pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(3600)]

LANGS = ("lua",)
PROBLEMS = 2
SHARDS = 2


class ContainerWatch:
    """Inspects every container of `images` the engine starts while it runs (they are removed
    after). Other containers (an image build's steps, another test on the same engine) are not
    the run's."""

    def __init__(self, client, images: tuple[str, ...]):
        self.client, self.images, self.seen, self.errors = client, images, [], []
        self.events = client.events(decode=True, filters={"type": "container", "event": "start"})
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self):
        try:
            for event in self.events:
                try:
                    container = self.client.inspect_container(event["id"])
                except Exception as exc:  # noqa: BLE001  (removed before it could be inspected)
                    self.errors.append(repr(exc))
                    continue
                if container["Config"]["Image"] in self.images:
                    self.seen.append(container)
        except Exception:  # noqa: BLE001  (the stream was closed)
            pass

    def stop(self):
        self.events.close()


@pytest.fixture(scope="module")
def docker_evaluation(docker_engine, docker_images, _moto_endpoint, tmp_path_factory):
    import boto3

    from multiplt_airflow import embedded

    aws = {"AWS_ENDPOINT_URL": _moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    patch = pytest.MonkeyPatch()
    for key in list(os.environ):
        if key.startswith("AWS_"):
            patch.delenv(key)
    for key, value in aws.items():
        patch.setenv(key, value)
    bucket = f"docker-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=_moto_endpoint).create_bucket(Bucket=bucket)
    replay, problems = replay_sources(f"s3://{bucket}/refsol", LANGS, PROBLEMS)
    conf = evaluate_conf(replay, problems, LANGS, shards=SHARDS)
    volume_prefix = f"multiplt-test-{uuid.uuid4().hex[:8]}"
    settings = {"RUNTIME": "docker", "WORKER_IMAGE": docker_images.worker,
                "SANDBOX_IMAGE": docker_images.sandbox, "DOCKER_NETWORK": "host",
                "DOCKER_GPUS": "none", "DATA_URI": f"s3://{bucket}/runs",
                "RESULTS_STORE": f"s3://{bucket}/results/results.parquet",
                "STAGE_VOLUME_PREFIX": volume_prefix}
    env = {**aws, "HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1",
           **{f"AIRFLOW__MULTIPLT__{k}": v for k, v in settings.items()}}
    root = tmp_path_factory.mktemp("docker-airflow")
    deployment = embedded.EmbeddedAirflow(root / "home", data_dir=root / "data", env=env)
    watch = ContainerWatch(docker_engine, (docker_images.worker, docker_images.sandbox))
    deployment.start(timeout=float(os.environ.get("MULTIPLT_AIRFLOW_START_TIMEOUT", "300")))
    try:
        client = deployment.client
        run_id = client.trigger("multiplt_evaluate", conf)
        state = wait_for_run(client, "multiplt_evaluate", run_id, timeout=1800)
        tis = client.task_instances("multiplt_evaluate", run_id)
        # a task that never ran (upstream_failed) has no log to fetch: its state says it
        logs = {(ti["task_id"], ti["map_index"]): task_log(
                    client, "multiplt_evaluate", run_id, ti["task_id"], ti["try_number"], ti["map_index"])
                if ti["try_number"] else f"(never ran: {ti['state']})"
                for ti in tis if ti["task_id"].startswith("execute.") or ti["state"] != "success"}
    finally:
        watch.stop()
        deployment.stop()
    if state != "success":
        failed = {k: v[-3000:] for k, v in logs.items() if not k[0].startswith("execute.")
                  or any(t["task_id"] == k[0] and t["map_index"] == k[1] and t["state"] != "success"
                         for t in tis)}
        patch.undo()
        pytest.fail(f"multiplt_evaluate ended {state} on the docker runtime:\n{failed}")
    yield {"bucket": bucket, "conf": conf, "tis": tis, "logs": logs, "containers": watch.seen,
           "volume_prefix": volume_prefix, "problems": problems}
    patch.undo()


def test_exact_pass_at_1_as_the_local_runtime(docker_evaluation):
    from multiplt.results import read_store

    table = read_store(f"s3://{docker_evaluation['bucket']}/results/results.parquet")
    rows = table.filter(table["model"] == "reference-solutions").to_dicts()
    assert [r["lang"] for r in rows] == list(LANGS)
    for row in rows:
        assert (row["k"], row["estimate"], row["num_problems"]) == (1, 0.5, PROBLEMS)
        assert row["run_uri"].startswith(f"s3://{docker_evaluation['bucket']}/runs/")
    execute = sorted(ti["map_index"] for ti in docker_evaluation["tis"] if ti["task_id"] == "execute.run")
    assert execute == list(range(SHARDS * len(LANGS)))


def test_every_stage_ran_in_a_container_sandbox_steps_without_network_or_root(docker_evaluation,
                                                                           docker_images):
    containers = docker_evaluation["containers"]
    commands = [c["Config"]["Entrypoint"] + c["Config"]["Cmd"] for c in containers]
    for command in ("build_benchmark", "generate", "score", "record_results"):
        word = {"build_benchmark": "benchmark", "record_results": "results"}.get(command, command)
        assert any(argv[:2] == ["multiplt", word] for argv in commands), (command, commands)
    runs = [c for c in containers if c["Config"]["Entrypoint"][:3] == ["multiplt", "stage", "run"]]
    assert len(runs) == SHARDS * len(LANGS)
    for c in runs:
        assert c["Config"]["Image"] == docker_images.sandbox
        assert c["HostConfig"]["NetworkMode"] == "none"
        assert c["Config"]["User"] == "10001:10001"
        assert c["HostConfig"]["CapDrop"] == ["ALL"]
        assert not any(k.startswith("AWS_SECRET") for k in (e.split("=")[0] for e in c["Config"]["Env"]))
    staging = [c for c in containers if c["Config"]["Entrypoint"][:2] == ["multiplt", "stage"]
               and c["Config"]["Entrypoint"][2] in ("in", "out")]
    assert len(staging) == 2 * SHARDS * len(LANGS)
    for c in staging:
        assert c["Config"]["User"] == "10001:10001" and c["HostConfig"]["NetworkMode"] == "host"
    for c in containers:  # Docker's init is PID 1 in front of multiplt (reaps, forwards signals)
        assert c["HostConfig"]["Init"] is True, c["Config"]["Entrypoint"]


def test_stage_in_and_out_move_only_what_changed(docker_evaluation):
    """Each shard downloads the run folder and uploads only the results it wrote: one results
    file per problem in all, never a completion file it read."""
    from multiplt import storage

    logs = docker_evaluation["logs"]
    out = [int(n) for (task, _), text in logs.items() if task == "execute.stage_out"
           for n in re.findall(r"staged out s3://\S+: (\d+) new or changed files", text)]
    staged_in = [int(n) for (task, _), text in logs.items() if task == "execute.stage_in"
                 for n in re.findall(r"staged in s3://\S+ -> \S+ \((\d+) files\)", text)]
    assert len(out) == len(staged_in) == SHARDS * len(LANGS), logs
    assert all(n >= PROBLEMS for n in staged_in)  # every completion file came in
    results = [u for u in storage.ls(f"s3://{docker_evaluation['bucket']}/runs/", recursive=True)
               if u.endswith(".results.json.gz")]
    assert sum(out) == len(results) == PROBLEMS * len(LANGS)


def test_stage_volumes_removed(docker_engine, docker_evaluation):
    volumes = docker_engine.volumes().get("Volumes") or []
    assert [v["Name"] for v in volumes if v["Name"].startswith(docker_evaluation["volume_prefix"])] == []
