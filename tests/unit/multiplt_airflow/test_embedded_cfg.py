"""The committed airflow.cfg (the embedded default) and its rendering into an AIRFLOW_HOME."""

from __future__ import annotations

import configparser
import json
import os
import re
import stat
from pathlib import Path

from multiplt_airflow import embedded

REPO = Path(__file__).resolve().parents[3]


def _read(path) -> configparser.ConfigParser:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(path)
    return cfg


def test_template_commits_no_machine_paths_or_secrets():
    text = (REPO / "airflow.cfg").read_text()
    settings = [line for line in text.splitlines() if line and not line.startswith(("#", "["))]
    for line in settings:
        value = line.split("=", 1)[1].strip()
        # every path is built from a placeholder, never a machine path
        assert not re.match(r"^(/|sqlite:////|file:///)", value), line
    assert "jwt_secret = ${JWT_SECRET}" in text and "secret_key = ${API_SECRET_KEY}" in text


def test_rendered_config_is_consistent_and_keeps_its_secrets(tmp_path):
    home, data = tmp_path / "home", tmp_path / "data"
    home.mkdir()
    out = embedded.render_config(home, 18234, data)
    text = out.read_text()
    assert "${" not in text and "$AIRFLOW_HOME" not in text
    cfg = _read(out)
    assert cfg["core"]["dags_folder"] == str(REPO / "dags")
    assert cfg["core"]["plugins_folder"] == str(REPO / "plugins")
    assert cfg["core"]["executor"] == "LocalExecutor"
    assert int(cfg["core"]["parallelism"]) <= 8
    assert cfg["core"]["load_examples"] == "False"
    assert cfg["core"]["simple_auth_manager_all_admins"] == "False"
    assert cfg["core"]["simple_auth_manager_users"] == "multiplt:admin"
    assert cfg["database"]["sql_alchemy_conn"] == f"sqlite:///{data}/airflow/airflow.db"
    assert cfg["api"]["host"] == "127.0.0.1" and cfg["api"]["port"] == "18234"
    assert cfg["core"]["execution_api_server_url"] == "http://127.0.0.1:18234/execution/"
    assert cfg["logging"]["base_log_folder"] == f"{home}/logs"
    assert cfg["multiplt"]["runtime"] == "local"
    assert cfg["multiplt"]["data_uri"] == f"file://{data}/runs"
    secrets = json.loads((home / "secrets.json").read_text())
    assert cfg["api_auth"]["jwt_secret"] == secrets["JWT_SECRET"]
    assert cfg["api"]["secret_key"] == secrets["API_SECRET_KEY"]
    assert cfg["core"]["fernet_key"] == secrets["FERNET_KEY"]
    for private in (out, home / "secrets.json"):
        assert stat.S_IMODE(os.stat(private).st_mode) == 0o600

    # a restart on another port keeps the secrets and moves every port-dependent setting
    again = _read(embedded.render_config(home, 18999, data))
    assert again["api_auth"]["jwt_secret"] == secrets["JWT_SECRET"]
    assert again["core"]["execution_api_server_url"] == "http://127.0.0.1:18999/execution/"
    assert again["api"]["base_url"] == "http://127.0.0.1:18999"


def test_password_is_generated_once_and_private(tmp_path):
    first = embedded.ensure_password(tmp_path)
    assert len(first) >= 12 and embedded.ensure_password(tmp_path) == first
    assert json.loads((tmp_path / "passwords.json").read_text()) == {"multiplt": first}
    assert stat.S_IMODE(os.stat(tmp_path / "passwords.json").st_mode) == 0o600
    assert embedded.ensure_password(tmp_path / ".." / tmp_path.name) == first


def test_extra_dag_bundles_and_overrides(tmp_path):
    cfg = _read(embedded.render_config(tmp_path, 1234, tmp_path / "d",
                                       extra_dag_folders={"tests": "/x/dags"},
                                       overrides={"multiplt": {"runtime": "docker"}}))
    bundles = json.loads(cfg["dag_processor"]["dag_bundle_config_list"])
    assert [b["name"] for b in bundles] == ["dags-folder", "tests"]
    assert bundles[1]["kwargs"] == {"path": "/x/dags"}
    assert cfg["multiplt"]["runtime"] == "docker"


def test_generated_files_are_git_ignored():
    import subprocess

    for path in (".airflow/airflow.db", ".airflow/simple_auth_manager_passwords.json.generated",
                 "data/results/results.parquet"):
        check = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO)
        assert check.returncode == 0, f"{path} is not git-ignored"
