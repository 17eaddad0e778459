"""README command 1 itself: `./scripts/main.sh` as a user runs it (the shell script, its option
routing, --no-setup and --exit-when-done, then scripts/embedded_airflow.py main-job on a fresh
embedded Airflow of its own), on the small planted corpus the README names, with relative paths. The README says the chain stops at testgen there
(the tiny model writes no assert) with its message, and prints the funnels and the pass@k table.
tests/integration/test_main_job.py follows the whole chain in-process with a served teacher."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess

import pytest

from multiplt_airflow.embedded import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_readme_main_job_on_the_planted_corpus(tiny_model, tmp_path):
    """Started from another folder than the repository root (main.sh changes to the root), with
    --model and --source relative to where it was started."""
    port = free_port()
    here = tmp_path / "elsewhere"
    here.mkdir()
    argv = [str(REPO / "scripts" / "main.sh"), "--no-setup", "--exit-when-done",
            "--model", os.path.relpath(tiny_model, here),
            "--source", os.path.relpath(REPO / "tests" / "fixtures" / "corpus" / "planted", here),
            "--languages", "py", "--limit", "1", "--n", "1", "--max-new-tokens", "8",
            "--port", str(port), "--home", str(tmp_path / "home"), "--data", str(tmp_path / "data")]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "MULTIPLT_AIRFLOW", "MULTIPLT_CALLER"))}
    proc = subprocess.run(argv, cwd=here, env={**env, "HF_HUB_OFFLINE": "1"}, capture_output=True,
                          text=True, timeout=600)
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:] + proc.stderr[-4000:]
    # the corpus stage ran on the relative --source (the stages run in other working folders)
    assert "corpus: file://" in out and "  near_dedup " in out
    assert "multiplt_corpus manual__" in out and ": failed" not in out
    # the README: testgen keeps 0 rows with the tiny model, and the chain stops there saying so
    assert "  no_asserts " in out and "testgen kept 0 rows: nothing announced" in out
    assert "translate: did not run" in out and "finetune: did not run" in out
    # the base model's evaluation and its pass@k line, and the UI login
    assert any(line.startswith("py ") and line.split()[1] == "1" and line.split()[3] == "1"
               for line in out.splitlines())
    assert f"Airflow UI: http://127.0.0.1:{port}" in out and "login: multiplt / " in out
    # --exit-when-done: Airflow is stopped, its port free again
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
