"""README: `./scripts/main.sh` checks its models, its teacher server and --publish-repo before
Airflow starts; each problem "is one line on stderr and exit code 2". This runs the real
scripts/main.sh (--no-setup; the option routing, then scripts/embedded_airflow.py main-job and its
job_models checks) with one bad argument at a time: exit 2, exactly one line on stderr naming the
problem, nothing on stdout about Airflow, and neither an Airflow home nor a data folder made,
whether given by --home/--data or by MULTIPLT_AIRFLOW_HOME/MULTIPLT_DATA. No Airflow starts: a
fraction of a second a case (tests/integration/test_main_sh.py runs the happy path, e2e).
The same checks through Python: tests/unit/multiplt_airflow/test_main_job_args.py."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there


@pytest.mark.parametrize("bad, problem", [
    # a teacher URL whose path does not end in /v1
    (["--teacher", "http://127.0.0.1:1/v2"],
     "--teacher 'http://127.0.0.1:1/v2': an OpenAI-compatible server URL ends in /v1"),
    # an unreachable teacher server
    (["--teacher", "http://127.0.0.1:{port}/v1"],
     "--teacher http://127.0.0.1:{port}/v1: server unreachable"),
    (["--publish-repo", "a/b/c"], "--publish-repo 'a/b/c' is not OWNER/NAME"),
    # a folder without config.json, relative to where main.sh was started
    (["--model", "empty"], "--model {here}/empty holds no model: no config.json in it"),
], ids=["teacher-not-v1", "teacher-unreachable", "publish-repo", "model-without-config"])
def test_a_bad_argument_is_one_line_and_exit_2_before_airflow_starts(tmp_path, bad, problem):
    here = tmp_path / "elsewhere"
    (here / "model").mkdir(parents=True)
    (here / "model" / "config.json").write_text("{}")  # enough for the --model check
    (here / "empty").mkdir()
    fill = {"port": closed_port(), "here": here}
    bad = [arg.format(**fill) for arg in bad]
    problem = problem.format(**fill)
    home, data = tmp_path / "home", tmp_path / "data"
    env_home, env_data = tmp_path / "env-home", tmp_path / "env-data"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "MULTIPLT_AIRFLOW", "MULTIPLT_CALLER"))}
    env.update(MULTIPLT_AIRFLOW_HOME=str(env_home), MULTIPLT_DATA=str(env_data),
               HF_HUB_OFFLINE="1")
    # --exit-when-done, --port and --start-timeout: should a check be lost, Airflow stops
    # again instead of serving on 8080 until the timeout
    argv = [str(REPO / "scripts" / "main.sh"), "--no-setup", "--model", "model", *bad,
            "--exit-when-done", "--port", str(closed_port()), "--start-timeout", "5",
            "--home", str(home), "--data", str(data)]
    proc = subprocess.run(argv, cwd=here, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"main-job: {problem}"), lines[0]
    assert "Airflow" not in proc.stdout, proc.stdout
    for folder in (home, data, env_home, env_data):
        assert not folder.exists(), f"{folder} was made"
