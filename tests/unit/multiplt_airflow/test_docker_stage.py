"""The docker runtime's storage mounts and credentials (plugins/multiplt_airflow/docker_stage.py),
against the stand-in Docker client of tests/dags/test_stage_runtime.py; no engine needed."""

from __future__ import annotations

import json
import sys

import pytest

from multiplt_airflow.stage import stage_task, stage_task_mapped
from tests.dags.test_stage_runtime import SECRET, FakeDocker, _dag, _render, docker_runtime  # noqa: F401

OPENAI_KEY = "sk-teacher-server-key-5e2b9c41"


class RecordingDocker(FakeDocker):
    """FakeDocker whose container prints the teacher key and whose removals are recorded."""

    def __init__(self, status_code: int = 0):
        super().__init__(status_code)
        self.removed = []

    def attach(self, **kwargs):
        return iter([b"multiplt generate: wrote 3 files\n", f"debug: key={OPENAI_KEY}\n".encode()])

    def remove_container(self, container_id, **kwargs):
        self.removed.append(container_id)

    def remove_volume(self, name):
        pass


def _binds(mounts) -> list[tuple[str, str]]:
    return [(m["Source"], m["Target"]) for m in mounts if m["Type"] == "bind"]


@pytest.fixture
def fake(monkeypatch):
    from multiplt_airflow.docker_stage import MultipltDockerOperator

    fake = RecordingDocker()
    monkeypatch.setattr(MultipltDockerOperator, "cli", property(lambda self: fake))
    return fake


@pytest.fixture
def file_storage(docker_runtime, monkeypatch, tmp_path):
    """The embedded defaults: file:// runs and a results store in a sibling folder."""
    data = tmp_path / "data"
    monkeypatch.setenv("AIRFLOW__MULTIPLT__DATA_URI", f"file://{data}/runs")
    monkeypatch.setenv("AIRFLOW__MULTIPLT__RESULTS_STORE", f"file://{data}/results/results.parquet")
    return data


# ---- defect: file:// results store outside the data root -----------------------------------
def test_results_store_folder_is_bind_mounted_and_created(file_storage, fake):
    """`results record --store file://<data>/results/...` writes the host, not the container."""
    runs, results = str(file_storage / "runs"), str(file_storage / "results")
    store = f"file://{results}/results.parquet"
    with _dag("docker_record"):
        record = stage_task("record", ["results", "record", "--scores", f"file://{runs}/m/rkt",
                                       "--store", store])
    assert sorted(_binds(record.mounts)) == [(results, results), (runs, runs)]
    assert not (file_storage / "results").exists()
    record.execute({})
    # the container got both mounts, and the missing folders exist (the engine refuses a
    # bind mount of a missing source)
    assert sorted(_binds(fake.created["host_config"]["mounts"])) == [(results, results), (runs, runs)]
    assert (file_storage / "results").is_dir() and (file_storage / "runs").is_dir()


def test_every_storage_step_mounts_the_results_folder(file_storage):
    runs, results = str(file_storage / "runs"), str(file_storage / "results")
    with _dag("docker_record_mapped") as dag:
        stage_task_mapped("publish", [["publish", "results", "--store", f"file://{results}/r.parquet"]])
        stage_task("execute", ["execute", "--in", f"file://{runs}/x"], sandbox=True)
    assert sorted(_binds(dag.get_task("publish").partial_kwargs["mounts"])) == [
        (results, results), (runs, runs)]
    for step in ("stage_in", "stage_out"):
        assert sorted(_binds(dag.get_task(f"execute.{step}").mounts)) == [(results, results), (runs, runs)]
    assert dag.get_task("execute.run").mounts == []  # the sandbox step touches no storage


@pytest.mark.parametrize("data_uri, results_store, roots", [
    ("file:///d/runs", "file:///d/results/results.parquet", ["/d/runs", "/d/results"]),
    ("file:///d", "file:///d/results/results.parquet", ["/d"]),            # inside the data root
    ("file:///d/runs", "file:///d/runs/results.parquet", ["/d/runs"]),     # the same folder
    ("file:///d/runs/", "file:///d/results.parquet", ["/d"]),              # data root inside it
    ("s3://b/runs", "file:///d/results/results.parquet", ["/d/results"]),
    ("file://localhost/d/runs", "s3://b/results/results.parquet", ["/d/runs"]),
    ("/d/runs", "s3://b/r.parquet", ["/d/runs"]),                          # an absolute bare path
    ("s3://b/runs", "s3://b/r.parquet", []),
    ("relative/runs", "file://host/r.parquet", []),                        # nothing a mount can fix
    ("file:///tmp/m/runs", "file:///tmp/m/results.parquet", ["/tmp/m"]),   # a folder of their own
    ("/tmp/m/runs", "//tmp/m/r.parquet", ["/tmp/m"]),                      # normpath keeps //
])
def test_file_roots(data_uri, results_store, roots):
    from multiplt_airflow.docker_stage import file_roots
    from multiplt_airflow.settings import MultipltSettings

    assert file_roots(MultipltSettings(data_uri=data_uri, results_store=results_store)) == roots


# ---- defect: a results store or data root directly in /, /tmp, ... mounted that whole folder --
@pytest.mark.parametrize("data_uri, results_store, key, folder", [
    ("s3://b/runs", "file:///tmp/results.parquet", "results_store", "/tmp"),
    ("s3://b/runs", "/results.parquet", "results_store", "/"),
    ("file:///d/runs", "file://localhost/results.parquet", "results_store", "/"),
    ("file:///d/runs", "file:///tmp/../r.parquet", "results_store", "/"),
    ("file:///d/runs", "//tmp/r.parquet", "results_store", "/tmp"),
    ("file:///", "s3://b/r.parquet", "data_uri", "/"),
    ("/tmp", "s3://b/r.parquet", "data_uri", "/tmp"),
    ("file:///home/", "s3://b/r.parquet", "data_uri", "/home"),
    ("file:///var/tmp", "s3://b/r.parquet", "data_uri", "/var/tmp"),
    ("file:///stage", "s3://b/r.parquet", "data_uri", "/stage"),
])
def test_file_roots_refuse_a_folder_the_host_shares(data_uri, results_store, key, folder):
    from multiplt.errors import MultipltError
    from multiplt_airflow.docker_stage import file_roots
    from multiplt_airflow.settings import MultipltSettings

    with pytest.raises(MultipltError) as err:
        file_roots(MultipltSettings(data_uri=data_uri, results_store=results_store))
    message = str(err.value)
    assert f"[multiplt] {key} = " in message and f", {folder}, into every stage container" in message
    assert "in a folder of its own" in message


def test_docker_stage_task_refuses_a_results_store_in_root(docker_runtime, monkeypatch):
    """Refused where the mounts are computed (when the DAG is parsed), before any container."""
    from multiplt.errors import MultipltError

    monkeypatch.setenv("AIRFLOW__MULTIPLT__RESULTS_STORE", "/results.parquet")
    with _dag("docker_store_in_root"), pytest.raises(MultipltError, match=r"results_store = /results\.parquet"):
        stage_task("record", ["results", "record", "--store", "/results.parquet"])


# ---- compose passes unset credentials as empty values: they stay unset ---------------------
def test_empty_credentials_are_not_passed(docker_runtime, fake, monkeypatch):
    from multiplt_airflow import credentials

    monkeypatch.setenv("OPENAI_API_KEY", "")
    monkeypatch.setenv("HF_TOKEN", "")
    monkeypatch.setattr(credentials, "hub_token_from_connection", lambda: "hf_from_the_connection_42")
    with _dag("docker_empty_credentials"):  # the teacher's key, and the Hub for its --tokenizer
        gen = stage_task("generate", ["generate", "--backend", "openai", "--tokenizer", "org/tok"])
    gen.execute({})
    env = fake.created["environment"]
    assert "OPENAI_API_KEY" not in env  # no empty key: the backend sends no Authorization
    assert env["HF_TOKEN"] == "hf_from_the_connection_42"  # the empty variable shadows nothing


# ---- defect: the teacher server's key is a credential --------------------------------------
def test_docker_openai_key_only_in_private_environment(docker_runtime, fake, monkeypatch, capfd):
    from multiplt_airflow import credentials

    masked = {}
    monkeypatch.setattr(credentials, "register_masks", masked.update)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    with _dag("docker_openai_key"):
        gen = stage_task("generate", ["generate", "--backend", "openai", "--api-base",
                                      "http://teacher:8000/v1"], gpu=True, do_xcom_push=True)
    assert OPENAI_KEY not in repr(vars(gen))  # not taken at parse time
    _render(gen)
    result = gen.execute({})
    # the container gets the key (a keyed server answers 401 without it), as private environment
    assert fake.created["environment"]["OPENAI_API_KEY"] == OPENAI_KEY
    assert "OPENAI_API_KEY" not in gen.environment  # the template field
    assert gen._private_environment["OPENAI_API_KEY"] == OPENAI_KEY
    assert masked["OPENAI_API_KEY"] == OPENAI_KEY  # registered with the secrets masker
    assert result == "debug: key=***"  # XCom redacted
    out = capfd.readouterr()
    assert "debug: key=***" in out.out + out.err and OPENAI_KEY not in out.out + out.err


def test_docker_openai_key_never_reaches_the_sandbox_step(docker_runtime, fake, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    with _dag("docker_openai_sandbox") as dag:
        stage_task("execute", ["execute", "--in", "s3://bucket/runs/x"], sandbox=True)
    envs = {}
    for step in ("stage_in", "run", "stage_out"):
        dag.get_task(f"execute.{step}").execute({"ti": _Ti()})
        envs[step] = fake.created["environment"]
    assert "OPENAI_API_KEY" not in envs["run"] and SECRET not in json.dumps(envs["run"])
    # nor the steps that stage files (least privilege: storage credentials only)
    for step in ("stage_in", "stage_out"):
        assert "OPENAI_API_KEY" not in envs[step] and OPENAI_KEY not in json.dumps(envs[step])
        assert envs[step]["AWS_SECRET_ACCESS_KEY"] == SECRET


class _Ti:
    dag_id, run_id, map_index = "docker_openai_sandbox", "manual__1", -1


def test_local_openai_key_is_masked_and_redacted(monkeypatch):
    from multiplt_airflow import credentials
    from multiplt_airflow.local_stage import MultipltStageOperator

    masked = {}
    monkeypatch.setattr(credentials, "register_masks", masked.update)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    # a stage command that prints its environment's key
    monkeypatch.setattr(MultipltStageOperator, "command", lambda self: [
        sys.executable, "-c", "import os; print('key=' + os.environ['OPENAI_API_KEY'])"])
    with _dag("local_openai_key"):
        task = stage_task("generate", ["generate", "--backend", "openai"], do_xcom_push=True)
    assert isinstance(task, MultipltStageOperator)
    assert task.execute({}) == "key=***"
    assert masked["OPENAI_API_KEY"] == OPENAI_KEY


# ---- containers are removed after a failure too (docs/architecture.md) ----------------------
def test_failed_container_is_removed(docker_runtime, monkeypatch):
    from airflow.providers.docker.exceptions import DockerContainerFailedException

    from multiplt_airflow.docker_stage import MultipltDockerOperator

    fake = RecordingDocker(status_code=1)
    monkeypatch.setattr(MultipltDockerOperator, "cli", property(lambda self: fake))
    with _dag("docker_fail_removed"):
        task = stage_task("generate", ["generate", "--in", "x"])
    with pytest.raises(DockerContainerFailedException):
        task.execute({})
    assert fake.removed == ["c0ffee"]


def test_a_folder_that_cannot_be_created_is_left_to_the_engine(file_storage, fake, monkeypatch):
    """A worker that does not share the folder's filesystem logs it and starts the container."""
    import os

    def refuse(path, exist_ok=False):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(os, "makedirs", refuse)
    with _dag("docker_record_no_folder"):
        record = stage_task("record", ["results", "record", "--store", "x"])
    record.execute({})
    assert len(_binds(fake.created["host_config"]["mounts"])) == 2


def test_the_stage_volume_is_removed_once_the_engine_lets_go_of_it():
    """The engine removes the exited stage-out container in the background (slowly with vfs):
    until then removing the volume is HTTP 409 "volume is in use"; other errors are not waited on."""
    import logging

    import pytest
    from docker.errors import APIError

    from multiplt_airflow.docker_stage import _remove_volume

    class Engine:
        def __init__(self, busy, error="remove v: volume is in use - [abc]"):
            self.busy, self.error, self.calls = busy, error, 0

        def remove_volume(self, name):
            self.calls += 1
            if self.calls <= self.busy:
                raise APIError(self.error)

        def containers(self, all, filters):  # noqa: A002  (docker-py's argument name)
            return []

    log = logging.getLogger("test")
    engine = Engine(busy=2)
    _remove_volume(engine, "v", log, wait_s=30)
    assert engine.calls == 3
    with pytest.raises(APIError, match="no such volume"):
        _remove_volume(Engine(busy=1, error="no such volume"), "v", log, wait_s=30)
    with pytest.raises(APIError, match="in use"):
        _remove_volume(Engine(busy=100), "v", log, wait_s=0)


def test_a_leftover_container_of_the_stage_volume_is_removed_so_the_volume_can_go():
    """A create call that timed out on the client (a loaded engine copying the image with vfs)
    leaves a container the engine made anyway, "created" and never started: it holds the stage
    volume for good. Removing the volume removes such leftovers of this volume (not running
    ones: the filter asks for created and exited only) and then succeeds."""
    import logging

    from docker.errors import APIError

    from multiplt_airflow.docker_stage import _remove_volume

    class Engine:
        def __init__(self):
            self.held = {"left": "created", "busy": "running"}  # containers mounting the volume
            self.asked, self.removed = [], []

        def containers(self, all, filters):  # noqa: A002  (docker-py's argument name)
            self.asked.append((all, filters))
            return [{"Id": cid, "State": state} for cid, state in self.held.items()
                    if filters["volume"] == "v" and state in filters["status"]]

        def remove_container(self, cid, v, force):
            assert not force and not v
            self.removed.append(cid)
            del self.held[cid]

        def remove_volume(self, name):
            if "left" in self.held:
                raise APIError("remove v: volume is in use - [left]")

    engine = Engine()
    _remove_volume(engine, "v", logging.getLogger("test"), wait_s=30)
    assert engine.removed == ["left"] and engine.held == {"busy": "running"}
    assert engine.asked == [(True, {"volume": "v", "status": ["created", "exited"]})]



# ---- container output: "\r" ends a line, as in the local runtime ---------------------------
class _RecordingLog:
    def __init__(self):
        self.lines: list[str] = []

    def info(self, fmt, *args):
        self.lines.append(fmt % args)

    def __getattr__(self, name):  # warning/debug/...: not what this test reads
        return lambda *args, **kwargs: None


def test_a_bar_redrawn_in_place_reaches_the_task_log_state_by_state(docker_runtime, monkeypatch):
    """The Docker provider splits container output on "\\n" only, so a library's bar ("\\r" between
    states, transformers loading weights) came as one record when it ended. Each state is now a
    line, logged as soon as the next state starts (not when the container ends)."""
    from multiplt_airflow.docker_stage import MultipltDockerOperator

    log = _RecordingLog()
    seen_when_drawing: list[list[str]] = []

    class BarDocker(RecordingDocker):
        def attach(self, **kwargs):
            def stream():
                yield b"\rload:  50%| 1/2"
                yield b"\rload: 100%| 2/2   \r"
                seen_when_drawing.append([line for line in log.lines if line.startswith("load")])
                yield b"\ndone\r\n"
                yield b"last line without end"
            return stream()

    fake = BarDocker()
    monkeypatch.setattr(MultipltDockerOperator, "cli", property(lambda self: fake))
    monkeypatch.setattr(MultipltDockerOperator, "log", property(lambda self: log))
    with _dag("docker_bar_lines"):
        task = stage_task("generate", ["generate", "--in", "x"], do_xcom_push=True, xcom_all=True)
    lines = task.execute({})
    assert lines == ["load:  50%| 1/2", "load: 100%| 2/2", "done", "last line without end"]
    assert seen_when_drawing == [["load:  50%| 1/2", "load: 100%| 2/2"]]
    assert [line for line in log.lines if line.startswith(("load", "done", "last"))] == lines


# ---- every stage container runs as uid 10001, never root ------------------------------------
class _Tis:
    """A task instance of `dag_id` for steps whose execute() names the stage volume."""

    def __init__(self, dag_id, task_id="t", run_id="manual__1", map_index=-1):
        self.dag_id, self.task_id, self.run_id, self.map_index = dag_id, task_id, run_id, map_index


def test_ordinary_and_gpu_stages_run_as_the_stage_user_not_root(file_storage, fake):
    """Ordinary and GPU stages ran as root (no `user`): on a file:// data root they left
    root-owned folders the stage-in/out steps (uid 10001) could not write into."""
    from multiplt_airflow.docker_stage import SANDBOX_USER

    with _dag("docker_users") as dag:
        stage_task("generate", ["generate", "--out", f"file://{file_storage}/runs/x"], gpu=True)
        stage_task("score", ["score", "--in", f"file://{file_storage}/runs/x"])
        stage_task_mapped("record", [["results", "record", "--store", "x"]])
        stage_task("execute", ["execute", "--in", f"file://{file_storage}/runs/x"], sandbox=True)
    assert SANDBOX_USER == "10001:10001"
    for task_id in ("generate", "score", "execute.stage_in", "execute.run", "execute.stage_out"):
        task = dag.get_task(task_id)
        assert task.user == SANDBOX_USER, task_id
    assert dag.get_task("record").partial_kwargs["user"] == SANDBOX_USER
    dag.get_task("score").execute({})
    assert fake.created["user"] == "10001:10001"  # what the engine is asked for


def test_a_data_root_the_stage_user_cannot_write_is_warned_about(tmp_path, monkeypatch):
    import os

    from multiplt_airflow.docker_stage import STAGE_GID, STAGE_UID, _ensure_folder

    log = _RecordingLog()
    warnings = []
    log.warning = lambda fmt, *args: warnings.append(fmt % args)
    root = tmp_path / "runs"
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    stat = os.stat(root)
    assert stat.st_uid != STAGE_UID and stat.st_gid != STAGE_GID
    _ensure_folder(str(root), log)
    assert warnings == [f"{root} is not writable by uid 10001, the user of every stage container: "
                        f"a stage that writes there fails with Permission denied (make it that "
                        f"user's: chown -R 10001:10001 {root})"]
    warnings.clear()
    root.chmod(0o777)  # world-writable: the stage user may write
    _ensure_folder(str(root), log)
    assert warnings == []
    # the stage user's own folder, as os.stat reports it (no chown needed to run this test)
    real_stat = os.stat

    def stat_as(mode):
        fields = list(real_stat(root))
        fields[0], fields[4], fields[5] = mode, STAGE_UID, STAGE_GID
        fake_stat = os.stat_result(fields)
        monkeypatch.setattr(os, "stat", lambda path, *args, **kwargs: fake_stat if str(path) == str(root)
                            else real_stat(path, *args, **kwargs))

    stat_as(0o40755)
    _ensure_folder(str(root), log)
    assert warnings == []
    stat_as(0o40555)  # its owner may not write
    _ensure_folder(str(root), log)
    assert len(warnings) == 1


def test_the_hub_cache_volume_is_mounted_in_ordinary_and_gpu_stages_only(docker_runtime, fake,
                                                                          monkeypatch):
    """Containers are removed when they end, and nothing kept the Hub cache (HF_HOME
    /cache/huggingface): every generate, train and publish downloaded the model again."""
    from multiplt_airflow import settings

    def volumes(mounts):
        return [(m["Source"], m["Target"]) for m in mounts if m["Type"] == "volume"]

    with _dag("docker_hf_cache") as dag:
        stage_task("generate", ["generate", "--in", "x"], gpu=True)
        stage_task("publish", ["publish", "results", "--store", "s3://b/r.parquet"])
        stage_task_mapped("train", [["train", "--out", "s3://b/x"]], gpu=True)
        stage_task("execute", ["execute", "--in", "s3://bucket/runs/x"], sandbox=True)
    cache = [("multiplt-hf-cache", "/cache/huggingface")]
    assert volumes(dag.get_task("generate").mounts) == cache
    assert volumes(dag.get_task("publish").mounts) == cache
    assert volumes(dag.get_task("train").partial_kwargs["mounts"]) == cache
    for step in ("stage_in", "run", "stage_out"):  # they download no model
        assert volumes(dag.get_task(f"execute.{step}").mounts) == []
    dag.get_task("generate").execute({})
    assert volumes(fake.created["host_config"]["mounts"]) == cache

    monkeypatch.setenv("AIRFLOW__MULTIPLT__HF_CACHE_VOLUME", "")  # off
    with _dag("docker_hf_cache_off"):
        gen = stage_task("generate", ["generate", "--in", "x"], gpu=True)
    assert volumes(gen.mounts) == []
    monkeypatch.setenv("AIRFLOW__MULTIPLT__HF_CACHE_VOLUME", "/var/cache/hf")
    with pytest.raises(ValueError, match=r"^\[multiplt\] hf_cache_volume must be a Docker volume "
                                         r"name .* or empty, not '/var/cache/hf'$"):
        settings.load()


# ---- the sandbox run step on AppArmor and SELinux hosts ---------------------------------------
def test_the_run_step_lifts_apparmor_and_selinux_confinement(docker_runtime, fake):
    """docker-default (AppArmor) denies mount, so bubblewrap failed "Failed to make / slave:
    Permission denied" on Ubuntu and Debian hosts; SELinux's container type denies its tmpfs."""
    with _dag("docker_run_lsm") as dag:
        stage_task("execute", ["execute", "--in", "s3://bucket/runs/x"], sandbox=True)
    run = dag.get_task("execute.run")
    run.execute({"ti": _Tis("docker_run_lsm", "execute.run")})
    security = fake.created["host_config"]["security_opt"]
    assert security == ["no-new-privileges", "seccomp=unconfined", "apparmor=unconfined",
                        "label=disable"]
    assert fake.created["host_config"]["cap_drop"] == ["ALL"]
    assert fake.created["host_config"]["MaskedPaths"] == fake.created["host_config"]["ReadonlyPaths"] == []
    for step in ("stage_in", "stage_out"):  # the networked steps keep the engine's confinement
        assert dag.get_task(f"execute.{step}").host_config == {"init": True}


def test_every_stage_container_runs_an_init_as_pid_1(file_storage, fake):
    """`multiplt` was PID 1 of its container: orphans of its tools (Pyright's node workers, a
    runtime's children) were never reaped, and a signal without a handler does not reach PID 1."""
    with _dag("docker_init") as dag:
        stage_task("generate", ["generate", "--in", "x"], gpu=True)
        stage_task("execute", ["execute", "--in", "s3://bucket/runs/x"], sandbox=True)
    for task_id in ("generate", "execute.stage_in", "execute.run", "execute.stage_out"):
        fake.created = {}
        dag.get_task(task_id).execute({"ti": _Tis("docker_init", task_id)})
        assert fake.created["host_config"]["init"] is True, task_id


def test_a_stage_volume_prefix_that_cannot_name_a_volume_is_refused(docker_runtime, monkeypatch):
    from multiplt_airflow import settings

    monkeypatch.setenv("AIRFLOW__MULTIPLT__STAGE_VOLUME_PREFIX", "my stage")
    with pytest.raises(ValueError, match=r"^\[multiplt\] stage_volume_prefix must start a Docker "
                                         r"volume name .*, not 'my stage'$"):
        settings.load()
    monkeypatch.setenv("AIRFLOW__MULTIPLT__STAGE_VOLUME_PREFIX", "s")  # s-<hash> is a name
    assert settings.load().stage_volume_prefix == "s"


# ---- containers are removed, running or not, and can be found by label ------------------------
def test_a_container_still_running_when_the_task_stops_is_removed_by_force(docker_runtime,
                                                                          monkeypatch):
    """On execution_timeout the provider's `finally` removed the container without force: the
    engine refuses a running one (409), that error replaced the timeout, and on_kill (called
    only for AirflowTaskTimeout) never ran: the container went on running."""
    from airflow.sdk.exceptions import AirflowTaskTimeout

    from multiplt_airflow.docker_stage import MultipltDockerOperator

    class Engine(RecordingDocker):
        def __init__(self):
            super().__init__()
            self.forced = []

        def attach(self, **kwargs):
            def stream():
                yield b"working\n"
                raise AirflowTaskTimeout("Timeout, PID: 1")
            return stream()

        def remove_container(self, container_id, **kwargs):
            self.removed.append(container_id)
            self.forced.append(kwargs.get("force", False))

    fake = Engine()
    monkeypatch.setattr(MultipltDockerOperator, "cli", property(lambda self: fake))
    with _dag("docker_timeout_removed"):
        task = stage_task("train", ["train", "--out", "s3://b/x"], gpu=True)
    assert task.auto_remove == "force"
    with pytest.raises(AirflowTaskTimeout):
        task.execute({})
    assert fake.removed == ["c0ffee"] and fake.forced == [True]


def test_every_stage_container_is_labelled_with_its_dag_task_and_run(docker_runtime, fake):
    with _dag("docker_labels") as dag:
        stage_task("generate", ["generate", "--in", "x"], gpu=True, labels={"team": "eval"})
        stage_task("execute", ["execute", "--in", "s3://bucket/runs/x"], sandbox=True)
    dag.get_task("generate").execute({"ti": _Tis("docker_labels", "generate", "scheduled__2"),
                                      "run_id": "scheduled__2"})
    assert fake.created["labels"] == {"team": "eval", "org.multiplt.stage": "docker_labels/generate",
                                      "org.multiplt.run": "scheduled__2"}
    for step in ("stage_in", "run", "stage_out"):
        task_id = f"execute.{step}"
        dag.get_task(task_id).execute({"ti": _Tis("docker_labels", task_id, "manual__7")})
        assert fake.created["labels"] == {"org.multiplt.stage": f"docker_labels/{task_id}",
                                          "org.multiplt.run": "manual__7"}
    # without a task instance (a test's execute({})): the operator's own DAG and task
    dag.get_task("generate").execute({})
    assert fake.created["labels"]["org.multiplt.stage"] == "docker_labels/generate"
    assert "org.multiplt.run" not in fake.created["labels"]


# ---- GPUs only for GPU stages, also where nvidia is the default runtime ----------------------
def test_only_containers_that_request_gpus_see_them(docker_runtime, fake, monkeypatch):
    """The CUDA base sets NVIDIA_VISIBLE_DEVICES=all: where the host's default runtime is
    nvidia, every worker container saw every GPU, outside the gpu pool."""
    with _dag("docker_nvidia_void") as dag:
        stage_task("generate", ["generate", "--in", "x"], gpu=True)
        stage_task("score", ["score", "--in", "x"])
        stage_task("execute", ["execute", "--in", "s3://bucket/runs/x"], sandbox=True)
    dag.get_task("generate").execute({})
    assert "NVIDIA_VISIBLE_DEVICES" not in fake.created["environment"]  # the device request's
    assert fake.created["host_config"]["device_requests"]
    dag.get_task("score").execute({})
    assert fake.created["environment"]["NVIDIA_VISIBLE_DEVICES"] == "void"
    for step in ("stage_in", "run", "stage_out"):
        dag.get_task(f"execute.{step}").execute({"ti": _Tis("docker_nvidia_void")})
        assert fake.created["environment"]["NVIDIA_VISIBLE_DEVICES"] == "void"
    monkeypatch.setenv("AIRFLOW__MULTIPLT__DOCKER_GPUS", "none")
    with _dag("docker_nvidia_none"):
        cpu_gen = stage_task("generate", ["generate", "--in", "x"], gpu=True)
    cpu_gen.execute({})
    assert fake.created["environment"]["NVIDIA_VISIBLE_DEVICES"] == "void"


# ---- the S3 client's settings reach the stage containers as the local runtime's stages get them
def test_s3_client_settings_reach_the_container(docker_runtime, fake, monkeypatch):
    settings = {"AWS_MAX_ATTEMPTS": "2", "MULTIPLT_S3_ADDRESSING_STYLE": "path",
                "MULTIPLT_S3_CONNECT_TIMEOUT": "5", "MULTIPLT_S3_READ_TIMEOUT": "30"}
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    with _dag("docker_s3_client_settings"):
        task = stage_task("score", ["score", "--in", "s3://b/run"])
    task.execute({})
    env = fake.created["environment"]
    assert {key: env.get(key) for key in settings} == settings
