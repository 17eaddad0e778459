"""The stage runtime: one factory, a local subprocess task or DockerOperators (plugins/multiplt_airflow)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from multiplt_airflow.stage import stage_task, stage_task_mapped
from tests.support.airflow import load_dag

TEST_DAGS = Path(__file__).resolve().parents[1] / "fixtures" / "airflow_dags"

SECRET = "s3cr3t-Key-that-must-not-leak-7f3a"
START = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)


def _dag(dag_id):
    from airflow.sdk import DAG

    return DAG(dag_id=dag_id, schedule=None, start_date=START, catchup=False,
               params={"lang": "rkt", "out": "s3://bucket/runs/x"})


def _load_dag(name):
    """A DAG from tests/fixtures/airflow_dags: dag.test() needs it in a configured bundle."""
    return load_dag(name, TEST_DAGS)


def _xcom(run, task_id):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        return session.query(XComModel.value).filter_by(
            run_id=run.run_id, dag_id=run.dag_id, task_id=task_id).scalar()


def _render(task, **context):
    import jinja2

    ctx = {"params": {"lang": "rkt", "out": "s3://bucket/runs/x"}, "run_id": "manual__1", **context}
    task.render_template_fields(ctx, jinja_env=jinja2.Environment())
    return task


# ---- local runtime --------------------------------------------------------------------------
def test_local_is_the_default_and_runs_a_real_command_under_dag_test(airflow_db, capfd):
    dag = _load_dag("multiplt_smoke")
    assert type(dag.get_task("version")).__name__ == "MultipltStageOperator"
    run = dag.test()
    assert run.state == "success"
    assert run.get_task_instance("version").state == "success"
    # the factory mapped over argv lists computed at run time (XCom), one task per list
    assert [ti.state for ti in run.get_task_instances() if ti.task_id == "mapped"] == ["success"] * 2
    out = capfd.readouterr()
    assert "multiplt 0.1.0" in out.out + out.err  # the command's stdout, streamed into the log


def test_local_failure_reports_exit_code_and_stderr_tail():
    from multiplt_airflow.local_stage import StageCommandFailed

    with _dag("stage_local_fail"):
        bad = stage_task("bad", ["no-such-command", "--flag"])
    with pytest.raises(StageCommandFailed) as err:
        bad.execute({})
    assert err.value.exit_code == 2
    assert "invalid choice" in err.value.stderr_tail
    assert "exited with code 2" in str(err.value)
    # bad input (exit 2) is not retried: retrying cannot fix it
    from airflow.sdk.exceptions import AirflowFailException

    assert isinstance(err.value, AirflowFailException)
    # other failures (exit 1: a crash, exit 3: the platform, e.g. no sandbox) keep their retries
    assert not issubclass(StageCommandFailed, AirflowFailException)


def test_local_argv_is_templated_and_gpu_stages_take_the_gpu_pool():
    with _dag("stage_local_tpl"):
        gen = stage_task("gen", ["benchmark", "ls", "--lang", "{{ params.lang }}"], gpu=True)
        plain = stage_task("plain", ["--version"])
    assert gen.pool == "gpu" and plain.pool != "gpu"
    assert _render(gen).argv == ["benchmark", "ls", "--lang", "rkt"]


def test_argv_must_be_a_list():
    with _dag("stage_bad_argv"), pytest.raises(TypeError, match="list of arguments"):
        stage_task("x", "score --in s3://b/x")


def test_local_mapped_expands_over_argv_lists():
    with _dag("stage_local_mapped"):
        mapped = stage_task_mapped("execute", [["--version"], ["--help"]], sandbox=True)
    assert mapped.expand_input.value == {"argv": [["--version"], ["--help"]]}


# ---- docker runtime -------------------------------------------------------------------------
@pytest.fixture
def docker_runtime(monkeypatch):
    monkeypatch.setenv("AIRFLOW__MULTIPLT__RUNTIME", "docker")
    monkeypatch.setenv("AIRFLOW__MULTIPLT__WORKER_IMAGE", "registry.example/multiplt-worker:1.2")
    monkeypatch.setenv("AIRFLOW__MULTIPLT__SANDBOX_IMAGE", "registry.example/multiplt-sandbox:1.2")
    monkeypatch.setenv("AIRFLOW__MULTIPLT__DATA_URI", "s3://bucket/runs")
    # not the default file:// store under the working directory: nothing to bind-mount
    monkeypatch.setenv("AIRFLOW__MULTIPLT__RESULTS_STORE", "s3://bucket/results/results.parquet")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio:9000")


def test_docker_gpu_stage_fields(docker_runtime):
    from multiplt_airflow.docker_stage import MultipltDockerOperator

    with _dag("stage_docker_gpu"):
        gen = stage_task("generate", ["generate", "--lang", "{{ params.lang }}", "--out", "{{ params.out }}"],
                         gpu=True, cpus=4, memory="16g")
    assert isinstance(gen, MultipltDockerOperator)
    _render(gen)
    assert gen.image == "registry.example/multiplt-worker:1.2"
    assert gen.entrypoint == ["multiplt"]
    assert gen.command == ["generate", "--lang", "rkt", "--out", "s3://bucket/runs/x"]
    [req] = gen.device_requests
    assert req["Capabilities"] == [["gpu"]] and req["Count"] == -1
    assert gen.pool == "gpu" and gen.cpus == 4.0 and gen.mem_limit == "16g"
    assert gen.network_mode is None  # networked: it reads and writes storage
    # never root (a file:// data root stays writable by every stage), removed even when running
    assert gen.user == "10001:10001" and gen.auto_remove == "force"
    # credentials are not taken at parse time: nothing secret in any field of the operator
    assert SECRET not in repr(vars(gen))


def test_docker_sandbox_stage_runs_without_network_between_stage_in_and_out(docker_runtime, monkeypatch):
    from airflow.sdk import TaskGroup

    monkeypatch.setenv("AIRFLOW__MULTIPLT__DOCKER_NETWORK", "multiplt")
    with _dag("stage_docker_sandbox") as dag:
        ex = stage_task("execute", ["execute", "--in", "{{ params.out }}", "--shard", "1/4"], sandbox=True)
    assert isinstance(ex, TaskGroup)
    stage_in, run, stage_out = (dag.get_task(f"execute.{s}") for s in ("stage_in", "run", "stage_out"))
    assert stage_in.downstream_task_ids == {"execute.run"}
    assert run.downstream_task_ids == {"execute.stage_out"}
    for t in (stage_in, run, stage_out):
        _render(t)
        assert t.command == ["execute", "--in", "s3://bucket/runs/x", "--shard", "1/4"]
    assert run.image == "registry.example/multiplt-sandbox:1.2"
    assert run.network_mode == "none" and run.credentials is False
    assert run.entrypoint[:3] == ["multiplt", "stage", "run"]
    assert stage_in.image == stage_out.image == "registry.example/multiplt-worker:1.2"
    assert stage_in.entrypoint[:3] == ["multiplt", "stage", "in"]
    assert stage_out.entrypoint[:3] == ["multiplt", "stage", "out"]
    assert stage_in.network_mode == stage_out.network_mode == "multiplt"
    assert stage_in.credentials is True and stage_out.credentials is True
    # never root; only the run step drops every capability (and lifts seccomp, AppArmor and
    # SELinux confinement for bubblewrap)
    assert stage_in.user == run.user == stage_out.user == "10001:10001"
    assert run.host_config["cap_drop"] == ["ALL"] and "no-new-privileges" in run.host_config["security_opt"]
    assert {"seccomp=unconfined", "apparmor=unconfined", "label=disable"} <= set(run.host_config["security_opt"])
    assert stage_in.host_config == stage_out.host_config == {"init": True}  # no confinement lifted


def test_docker_gpus_none_runs_gpu_stages_without_device_requests(docker_runtime, monkeypatch):
    """`[multiplt] docker_gpus = none`: a CPU worker image on a machine without GPUs."""
    from multiplt_airflow import settings

    monkeypatch.setenv("AIRFLOW__MULTIPLT__DOCKER_GPUS", "none")
    with _dag("stage_docker_cpu"):
        gen = stage_task("generate", ["generate", "--in", "x"], gpu=True)
    assert not gen.device_requests and gen.pool == "gpu"
    monkeypatch.setenv("AIRFLOW__MULTIPLT__DOCKER_GPUS", "some")
    with pytest.raises(ValueError, match="docker_gpus must be one of all, none"):
        settings.load()


def test_docker_stage_out_removes_the_stage_volume(docker_runtime):
    with _dag("stage_docker_volume") as dag:
        stage_task("execute", ["execute", "--in", "s3://bucket/runs/x"], sandbox=True)
    flags = {s: dag.get_task(f"execute.{s}").remove_volume for s in ("stage_in", "run", "stage_out")}
    assert flags == {"stage_in": False, "run": False, "stage_out": True}


def test_docker_mapped_sandbox_stage(docker_runtime):
    """A mapped task group over the argv lists: instance i's three steps run argv i
    (tests/dags/test_docker_mapped_stage.py: one shard's failure stops no other)."""
    import types

    argvs = [["execute", "--shard", f"{k}/2"] for k in (1, 2)]
    with _dag("stage_docker_mapped") as dag:
        stage_task_mapped("execute", argvs, sandbox=True)
    for step in ("stage_in", "run", "stage_out"):
        task = _render(dag.get_task(f"execute.{step}"), ti=types.SimpleNamespace(map_index=1))
        assert task.command == argvs[1]
    assert dag.get_task("execute.run").network_mode == "none"


class FakeDocker:
    """Stands in for docker.APIClient: records the container request, returns a log."""

    def __init__(self, status_code: int = 0):
        self.created = {}
        self.status_code = status_code

    def images(self, name):
        return [{"Id": name}]

    def create_host_config(self, **kwargs):
        return kwargs

    def create_container(self, **kwargs):
        self.created = kwargs
        return {"Id": "c0ffee"}

    def attach(self, **kwargs):
        # a command that echoes its environment must not leak it into the task log
        return iter([b"multiplt generate: wrote 3 files\n", f"debug: key={SECRET}\n".encode()])

    def start(self, container_id):
        pass

    def wait(self, container_id):
        return {"StatusCode": self.status_code}

    def remove_container(self, container_id, **kwargs):
        pass


def test_docker_credentials_only_in_private_environment(docker_runtime, airflow_db, monkeypatch, capfd):
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.xcom import XComModel
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.utils.session import create_session

    from multiplt_airflow.docker_stage import MultipltDockerOperator

    fake = FakeDocker()
    monkeypatch.setattr(MultipltDockerOperator, "cli", property(lambda self: fake))
    dag = _load_dag("multiplt_stage_docker")
    assert isinstance(dag.get_task("generate"), MultipltDockerOperator)
    assert SECRET not in json.dumps(DagSerialization.to_dict(dag), default=str)
    run = dag.test()
    assert run.state == "success"
    # the container got the credentials, as environment, and nowhere else
    assert fake.created["environment"]["AWS_SECRET_ACCESS_KEY"] == SECRET
    assert fake.created["environment"]["AWS_ENDPOINT_URL"] == "http://minio:9000"
    assert SECRET not in json.dumps(fake.created["command"])
    # as the stage user, labelled with its DAG, task and run (leftovers are found by label)
    assert fake.created["user"] == "10001:10001"
    assert fake.created["labels"] == {"org.multiplt.stage": "multiplt_stage_docker/generate",
                                      "org.multiplt.run": run.run_id}
    with create_session() as session:
        rendered = session.query(RenderedTaskInstanceFields.rendered_fields).filter_by(
            run_id=run.run_id, dag_id=dag.dag_id).all()
        xcoms = session.query(XComModel.value).filter_by(run_id=run.run_id, dag_id=dag.dag_id).all()
    assert rendered and xcoms
    assert "s3://bucket/runs/x" in json.dumps(rendered, default=str)
    assert SECRET not in json.dumps(rendered, default=str)
    assert SECRET not in json.dumps(xcoms, default=str)
    out = capfd.readouterr()
    assert "wrote 3 files" in out.out + out.err
    assert "debug: key=***" in out.out + out.err
    assert SECRET not in out.out + out.err


@pytest.mark.parametrize("status_code, rejected", [(2, True), (1, False), (3, False)])
def test_docker_bad_input_fails_without_retries(docker_runtime, monkeypatch, status_code, rejected):
    """Exit 2 from the container (bad input) fails the task at once; other failures keep their
    retries, as in the local runtime."""
    from airflow.providers.docker.exceptions import DockerContainerFailedException
    from airflow.sdk.exceptions import AirflowFailException

    from multiplt_airflow.docker_stage import DockerStageInputRejected, MultipltDockerOperator

    fake = FakeDocker(status_code)
    monkeypatch.setattr(MultipltDockerOperator, "cli", property(lambda self: fake))
    with _dag(f"stage_docker_exit_{status_code}"):
        task = stage_task("generate", ["generate", "--in", "x"])
    with pytest.raises(DockerContainerFailedException) as err:
        task.execute({})
    assert isinstance(err.value, AirflowFailException) is rejected
    assert isinstance(err.value, DockerStageInputRejected) is rejected
    assert f"'StatusCode': {status_code}" in str(err.value)
