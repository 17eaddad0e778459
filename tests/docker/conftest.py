"""The docker tier: a real Docker engine and the images from scripts/build_images.sh.

`docker_engine` (session) uses the engine at unix:///var/run/docker.sock when one answers; else,
as root with `dockerd` installed (Debian's docker.io, from scripts/setup.sh), it starts one with
`--iptables=false --ip6tables=false --bridge=none` (no iptables needed; containers get no
network or the host's) and the overlay2 storage driver, or vfs where dockerd refuses overlay2
(vfs works everywhere but copies the whole image for every container and build step), and
stops it after the session. Otherwise every test of the tier
skips, saying why. `docker_images` (session) builds the images only when they are missing or
their inputs changed (`scripts/build_images.sh --check`), so a machine keeps them between runs.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOCKET = "/var/run/docker.sock"
DOCKERD_ARGS = ["--iptables=false", "--ip6tables=false", "--bridge=none"]


def _wait_for_engine(proc, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if _engine_answers():
            return True
        time.sleep(0.5)
    return False


@dataclasses.dataclass(frozen=True)
class Images:
    sandbox: str
    worker: str  # the CPU worker (the GPU worker is not built without a registry)


def _engine_answers() -> bool:
    """Whether an engine answers at SOCKET. A socket file can outlive its engine (a dockerd that
    was killed leaves it behind), so only an answer counts; the client's constructor already asks
    the engine for its version, which is why it is inside the try."""
    import docker

    if not os.path.exists(SOCKET):
        return False
    try:
        return bool(docker.APIClient(base_url=f"unix://{SOCKET}").ping())
    except Exception:  # noqa: BLE001  (any failure to answer means: no engine)
        return False


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory):
    """A docker.APIClient on a running engine (started here when needed and possible)."""
    import docker

    if _engine_answers():
        yield docker.APIClient(base_url=f"unix://{SOCKET}", version="auto", timeout=600)
        return
    if os.geteuid() != 0:
        pytest.skip(f"docker tier: no Docker engine answers at {SOCKET}, and starting dockerd "
                    "needs root")
    if shutil.which("dockerd") is None:
        pytest.skip("docker tier: no Docker engine answers and dockerd is not installed "
                    "(Debian package docker.io; scripts/setup.sh installs it)")
    log = tmp_path_factory.mktemp("dockerd") / "dockerd.log"
    proc, tried = None, []
    for driver in ("overlay2", "vfs"):  # dockerd refuses overlay2 where overlays do not mount
        args = [f"--storage-driver={driver}", *DOCKERD_ARGS]
        tried.append(" ".join(args))
        with open(log, "ab") as out:
            proc = subprocess.Popen(["dockerd", *args], stdout=out, stderr=subprocess.STDOUT)
        if _wait_for_engine(proc):
            break
        proc.kill()
        proc.wait()
        proc = None
    if proc is None:
        pytest.skip(f"docker tier: dockerd did not start ({'; '.join(tried)}): "
                    f"{log.read_text()[-1500:]}")
    try:
        yield docker.APIClient(base_url=f"unix://{SOCKET}", version="auto", timeout=600)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def docker_images(docker_engine, tmp_path_factory) -> Images:
    """The sandbox and CPU worker images, built only when missing or out of date."""
    script = ROOT / "scripts" / "build_images.sh"
    check = subprocess.run([str(script), "--check"], capture_output=True, text=True)
    if check.returncode != 0:
        log = tmp_path_factory.mktemp("images") / "build.log"
        with open(log, "w") as out:
            build = subprocess.run([str(script)], stdout=out, stderr=subprocess.STDOUT)
        if build.returncode != 0:
            pytest.fail(f"scripts/build_images.sh failed:\n{log.read_text()[-4000:]}")
    return Images(sandbox=os.environ.get("MULTIPLT_SANDBOX_IMAGE", "multiplt-sandbox:latest"),
                  worker=os.environ.get("MULTIPLT_CPU_WORKER_IMAGE", "multiplt-worker:cpu"))
