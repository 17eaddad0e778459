"""The embedded default deployment: Airflow 3 on 127.0.0.1, SQLite, LocalExecutor.

``EmbeddedAirflow`` renders the committed ``airflow.cfg`` template into an instance folder
(``AIRFLOW_HOME``), migrates the database, starts the four components (api-server, scheduler,
dag-processor, triggerer) on a chosen or free loopback port, waits until all report healthy,
creates the ``gpu`` pool (or sets it again, on a home started before) and hands back the UI
address and the login. ``stop()`` ends every process it started (and any they started), and
nothing else.

Standard library only: Airflow runs in the child processes, never in the caller.
"""

from __future__ import annotations

import base64
import configparser
import io
import json
import os
import secrets
import signal
import socket
import string
import subprocess
import sys
import time
import uuid
from pathlib import Path

from multiplt_airflow.rest import AirflowClient

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "airflow.cfg"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
USERNAME = "multiplt"
MARKER_ENV = "MULTIPLT_EMBEDDED_ID"  # inherited by every process of one deployment


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def ensure_secrets(home: Path) -> dict[str, str]:
    """The secrets every component must share, generated once per AIRFLOW_HOME."""
    path = home / "secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    values = {
        "JWT_SECRET": secrets.token_urlsafe(32),
        "API_SECRET_KEY": secrets.token_urlsafe(32),
        # a Fernet key is 32 url-safe base64-encoded bytes
        "FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
    }
    _write_private(path, json.dumps(values, indent=1) + "\n")
    return values


def ensure_password(home: Path, username: str = USERNAME) -> str:
    """The login's password, generated once, in the simple auth manager's passwords file."""
    path = home / "passwords.json"
    passwords = json.loads(path.read_text()) if path.exists() else {}
    if username not in passwords:
        passwords[username] = secrets.token_urlsafe(12)
        _write_private(path, json.dumps(passwords) + "\n")
    return passwords[username]


def render_config(home: Path, port: int, data_dir: Path, *, template: Path = TEMPLATE,
                  repo: Path = REPO, extra_dag_folders: dict[str, str] | None = None,
                  overrides: dict[str, dict[str, str]] | None = None) -> Path:
    """Render the committed template into ``home/airflow.cfg`` and return its path."""
    values = {"AIRFLOW_HOME": str(home), "MULTIPLT_ROOT": str(repo), "MULTIPLT_DATA": str(data_dir),
              "MULTIPLT_API_PORT": str(port), **ensure_secrets(home)}
    text = string.Template(template.read_text()).substitute(values)
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keep keys as written
    parser.read_string(text)
    if extra_dag_folders:
        bundles = [{"name": "dags-folder",
                    "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle", "kwargs": {}}]
        bundles += [{"name": name, "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                     "kwargs": {"path": str(folder)}} for name, folder in extra_dag_folders.items()]
        parser.set("dag_processor", "dag_bundle_config_list", json.dumps(bundles))
    for section, options in (overrides or {}).items():
        if not parser.has_section(section):
            parser.add_section(section)
        for key, value in options.items():
            parser.set(section, key, str(value))
    out = home / "airflow.cfg"
    buf = io.StringIO()
    buf.write(f"# Generated from {template} by multiplt_airflow.embedded; edit the template.\n")
    parser.write(buf)
    _write_private(out, buf.getvalue())
    return out


class EmbeddedAirflow:
    """One Airflow deployment on 127.0.0.1. Use as a context manager, or start()/stop()."""

    def __init__(self, airflow_home: str | os.PathLike, *, port: int | None = None,
                 data_dir: str | os.PathLike | None = None,
                 extra_dag_folders: dict[str, str] | None = None,
                 overrides: dict[str, dict[str, str]] | None = None,
                 env: dict[str, str] | None = None, gpu_slots: int = 1):
        self.airflow_home = Path(airflow_home).resolve()
        self.data_dir = Path(data_dir or os.environ.get("MULTIPLT_DATA") or REPO / "data").resolve()
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.username = USERNAME
        self.password = ""
        self.extra_dag_folders = extra_dag_folders or {}
        self.overrides = overrides or {}
        self.extra_env = env or {}
        self.gpu_slots = gpu_slots
        self.id = uuid.uuid4().hex
        self.processes: dict[str, subprocess.Popen] = {}
        self.client: AirflowClient | None = None

    # ---- configuration ----------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.airflow_home / "airflow.cfg"

    @property
    def log_dir(self) -> Path:
        return self.airflow_home / "logs"

    def environment(self) -> dict[str, str]:
        """The environment of every component: this instance's home and config, and a marker."""
        env = dict(os.environ)
        env.update(self.extra_env)
        env.update({"AIRFLOW_HOME": str(self.airflow_home), "AIRFLOW_CONFIG": str(self.config_path),
                    "MULTIPLT_DATA": str(self.data_dir), MARKER_ENV: self.id,
                    "PYTHONUNBUFFERED": "1"})
        return env

    def prepare(self) -> None:
        """Render the config, create the login and migrate the database (idempotent)."""
        for d in (self.airflow_home, self.log_dir, self.data_dir / "airflow"):
            d.mkdir(parents=True, exist_ok=True)
        render_config(self.airflow_home, self.port, self.data_dir,
                      extra_dag_folders=self.extra_dag_folders, overrides=self.overrides)
        self.password = ensure_password(self.airflow_home, self.username)
        self._run_airflow(["db", "migrate"], "db-migrate")

    def _run_airflow(self, args: list[str], name: str, timeout: float = 600) -> None:
        log = self.log_dir / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.run([sys.executable, "-m", "airflow", *args], env=self.environment(),
                                  stdout=out, stderr=subprocess.STDOUT, cwd=self.airflow_home,
                                  timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed (exit {proc.returncode}):\n"
                               + _tail(log))

    # ---- processes --------------------------------------------------------------------------
    def start(self, timeout: float = 300) -> "EmbeddedAirflow":
        self.prepare()
        env = self.environment()
        try:
            for component in COMPONENTS:
                out = open(self.log_dir / f"{component}.log", "ab")
                self.processes[component] = subprocess.Popen(
                    [sys.executable, "-m", "airflow", component], env=env, stdout=out,
                    stderr=subprocess.STDOUT, cwd=self.airflow_home, start_new_session=True)
                out.close()
            self.client = AirflowClient(self.base_url, self.username, self.password)
            self.wait_healthy(timeout)
            self.client.ensure_pool("gpu", self.gpu_slots, "GPU stages (generate, train)")
        except BaseException:
            self.stop()
            raise
        return self

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"airflow {name} exited with code {proc.returncode}:\n"
                                       + _tail(self.log_dir / f"{name}.log"))
            try:
                health = self.client.health()
                states = {k: (v or {}).get("status") for k, v in health.items()}
                last = json.dumps(states)
                if all(states.get(k) == "healthy"
                       for k in ("metadatabase", "scheduler", "triggerer", "dag_processor")):
                    return
            except OSError as exc:
                last = str(exc)
            time.sleep(1)
        raise RuntimeError(f"embedded Airflow not healthy after {timeout:.0f}s ({last}); "
                           f"logs in {self.log_dir}")

    def stop(self, grace: float = 30) -> None:
        """Terminate every process of this deployment: the components, then any stragglers."""
        for proc in self.processes.values():
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.processes.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
        for pid in self.leftover_pids():  # e.g. task processes that started their own session
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.processes.clear()

    def leftover_pids(self) -> list[int]:
        """Live processes carrying this deployment's marker in their environment."""
        marker = f"{MARKER_ENV}={self.id}".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                        pids.append(int(entry.name))
            except OSError:
                continue
        return pids

    def login_text(self) -> str:
        return (f"Airflow UI: {self.base_url}\n"
                f"login: {self.username} / {self.password}   "
                f"(password file: {self.airflow_home / 'passwords.json'})")

    def __enter__(self) -> "EmbeddedAirflow":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # each component leads its own session/group
    except (ProcessLookupError, PermissionError):
        pass


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"
