"""The hostile subset inside the sandbox image (issue 19, point 3): fork bomb, endless output,
sleep forever, network connect and write outside, in Lua and Python, run by `multiplt execute`
in a container started as the docker runtime starts a sandbox run step (no network, uid 10001,
no capabilities; RUN_HOST_CONFIG). The outcomes must be those of the local sandbox on this
machine, status for status; nothing may connect, change the victim folder or stay alive."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from multiplt.languages.base import OK
from multiplt_airflow.docker_stage import RUN_HOST_CONFIG, SANDBOX_USER, with_host_config

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(3600)]

ROOT = Path(__file__).resolve().parents[2]
DRIVER = "tests/docker/hostile_driver.py"
LANGS = ("lua", "py")
CASES = ("fork_bomb", "endless_output", "sleep_forever", "connect_localhost", "write_outside")


def _folders(tmp_path, tag):
    run, victim = tmp_path / f"run-{tag}", Path(f"/var/tmp/multiplt-hostile-{tag}-{uuid.uuid4().hex[:8]}")
    for path in (run, victim):
        path.mkdir()
        os.chmod(path, 0o777)  # the container's user writes results; only the sandbox guards victim
    (victim / "victim.txt").write_text("original")
    os.chmod(victim / "victim.txt", 0o666)
    return run, victim


def _victim_untouched(victim: Path) -> None:
    assert sorted(os.listdir(victim)) == ["victim.txt"]
    assert (victim / "victim.txt").read_text() == "original"


@pytest.fixture(scope="module")
def local_outcome(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile-local")
    run, victim = _folders(tmp, "local")
    out = subprocess.run([sys.executable, str(ROOT / DRIVER), str(run), str(victim),
                          ",".join(LANGS), ",".join(CASES)], capture_output=True, text=True,
                         timeout=600, cwd=ROOT)
    try:
        assert out.returncode == 0, out.stderr[-3000:]
        _victim_untouched(victim)
        yield json.loads(out.stdout.splitlines()[-1])
    finally:
        shutil.rmtree(victim, ignore_errors=True)


@pytest.fixture(scope="module")
def container_outcome(docker_engine, docker_images, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile-container")
    run, victim = _folders(tmp, "container")
    host_config = with_host_config(docker_engine.create_host_config, dict(
        network_mode="none", auto_remove=False,
        binds={str(run): {"bind": "/run-dir", "mode": "rw"},
               str(victim): {"bind": str(victim), "mode": "rw"},
               str(ROOT / "tests"): {"bind": "/driver/tests", "mode": "ro"}}), RUN_HOST_CONFIG)
    container = docker_engine.create_container(
        docker_images.sandbox, entrypoint=["python", f"/driver/{DRIVER}"],
        command=["/run-dir", str(victim), ",".join(LANGS), ",".join(CASES)],
        user=SANDBOX_USER, network_disabled=True, host_config=host_config, working_dir="/tmp")
    try:
        docker_engine.start(container)
        code = docker_engine.wait(container, timeout=600)["StatusCode"]
        logs = docker_engine.logs(container, stdout=True, stderr=False).decode()
        errors = docker_engine.logs(container, stdout=False, stderr=True).decode()
        info = docker_engine.inspect_container(container)
    finally:
        docker_engine.remove_container(container, force=True)
    try:
        assert code == 0, errors[-3000:]
        yield {**json.loads(logs.splitlines()[-1]), "victim": victim, "info": info}
    finally:
        shutil.rmtree(victim, ignore_errors=True)


def test_container_runs_without_network_or_root(container_outcome):
    info = container_outcome["info"]
    assert info["HostConfig"]["NetworkMode"] == "none"
    assert info["HostConfig"]["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in info["HostConfig"]["SecurityOpt"]
    assert container_outcome["uid"] == 10001


def test_attacks_contained_as_locally(container_outcome, local_outcome):
    for outcome in (container_outcome, local_outcome):
        assert outcome["exit_code"] == 0, outcome["stderr"]
        assert sorted(outcome["statuses"]) == sorted(f"hostile_{c}_{k}" for c in LANGS for k in CASES)
        for name, (attack, good) in outcome["statuses"].items():
            assert attack != OK, f"{name}: the attack ended OK"
            assert good == OK, f"{name}: the good program after the attack ended {good}"
        assert outcome["connections"] == 0
    assert container_outcome["statuses"] == local_outcome["statuses"]


def test_nothing_left_or_changed_in_the_container(container_outcome):
    assert container_outcome["left"] == []
    _victim_untouched(container_outcome["victim"])
