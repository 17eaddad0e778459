"""README command 1 interrupted: `./scripts/main.sh` (here --no-setup on the `stdlib` corpus,
whose corpus stage works for minutes) gets Ctrl-C (SIGINT to its process group, as a terminal
sends it) while multiplt_corpus runs. It exits 130 (the README's convention), and before it stops
Airflow it marks the job's unfinished runs failed, so that none resumes behind a later job when
Airflow starts again, and sets the Airflow Variables it set back to what they were: the
deployment's own Variable as it was, the others deleted. Read from the deployment's database
once everything is stopped. tests/unit/multiplt_airflow/test_main_job_end.py checks the same on
a simulated REST API, SIGTERM (143) and a --timeout included."""

from __future__ import annotations

import json
import os
import pathlib
import queue
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from multiplt_airflow.embedded import EmbeddedAirflow, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = pathlib.Path(__file__).resolve().parents[2]
CHAIN = ["multiplt_corpus", "multiplt_testgen", "multiplt_translate", "multiplt_finetune",
         "multiplt_evaluate", "multiplt_publish"]
MINE = '{"dataset_repo": "ns/mine", "dry_run": "/srv/pub"}'

# run with the deployment's environment: set the deployment's own Variable, or print the chain's
# runs, their unfinished task instances, the paused flags and the Variables as JSON
DATABASE = """
import json, sys
from airflow.models import DagModel, DagRun, TaskInstance, Variable
from airflow.utils.session import create_session
chain = json.loads(sys.argv[2])
with create_session() as session:
    if sys.argv[1] == "set":
        session.add(Variable(key="multiplt_publish", val=sys.argv[3], description="mine"))
    else:
        runs = {f"{r.dag_id} {r.run_id}": str(r.state) for r in session.query(DagRun)
                if r.dag_id in chain}
        working = [f"{t.dag_id} {t.task_id} {t.state}" for t in session.query(TaskInstance)
                   if t.state in ("running", "queued", "scheduled", "up_for_retry", "deferred",
                                  "restarting")]
        paused = {d.dag_id: d.is_paused for d in session.query(DagModel) if d.dag_id in chain}
        variables = {v.key: [v.val, v.description] for v in session.query(Variable)}
        print(json.dumps({"runs": runs, "working": working, "paused": paused,
                          "variables": variables}))
"""


def test_ctrl_c_stops_the_jobs_runs_sets_its_variables_back_and_exits_130(tiny_model, tmp_path):
    home, data = tmp_path / "home", tmp_path / "data"
    deployment = EmbeddedAirflow(home, data_dir=data, env={"HF_HUB_OFFLINE": "1"})
    deployment.prepare()  # the database of a deployment used before: a Variable of its own
    env = deployment.environment()

    def database(*argv: str) -> str:
        proc = subprocess.run([sys.executable, "-c", DATABASE, argv[0], json.dumps(CHAIN),
                               *argv[1:]], env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout

    database("set", MINE)

    argv = [str(REPO / "scripts" / "main.sh"), "--no-setup", "--model", tiny_model,
            "--source", "stdlib", "--languages", "py", "--limit", "1", "--n", "1",
            "--max-new-tokens", "8", "--port", str(free_port()), "--home", str(home),
            "--data", str(data)]
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("AIRFLOW", "MULTIPLT_AIRFLOW", "MULTIPLT_CALLER"))}
    proc = subprocess.Popen(argv, cwd=tmp_path, env={**clean, "HF_HUB_OFFLINE": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # its own process group, as in a terminal
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout],
                              daemon=True)
    reader.start()
    out = []
    try:
        deadline = time.monotonic() + 600
        while not any("multiplt_corpus manual__" in line and line.rstrip().endswith(": running")
                      for line in out):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(out)[-4000:]
            try:
                out.append(lines.get(timeout=5))
            except queue.Empty:
                pass
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
        rc = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    reader.join(60)  # the last lines, up to the end of its output
    while not lines.empty():
        out.append(lines.get())
    text = "".join(out)
    assert rc == 130, text[-4000:]
    assert "marked the job's unfinished runs failed" in text and "stopping Airflow ..." in text
    assert ("Airflow Variables multiplt_testgen, multiplt_publish set back to what they were "
            "before the job (deleted: multiplt_testgen)") in text

    state = json.loads(database("read"))
    # the runs the job names as marked failed are failed; the corpus run is one of them, but
    # where it ended on its own between the Ctrl-C and the job's stop (a loaded machine: the
    # stop lists every chain DAG's runs first), when it succeeded; every run of the chain has
    # ended, none resumes
    marked = re.search(r"marked the job's unfinished runs failed \([^)]*\): (.*)", text)
    ended = marked[1].strip().split(", ")
    assert all(state["runs"][run] == "failed" for run in ended), (ended, state["runs"])
    # a run marked failed as it ended succeeds where the scheduler's write lands last (SQLite
    # has no row locks): the job names it so
    finished = re.search(r"ended on their own with success as they were marked failed: (.*)", text)
    finished = finished[1].strip().split(", ") if finished else []
    assert all(state["runs"][run] == "success" for run in finished), (finished, state["runs"])
    [corpus] = [run for run in state["runs"] if run.startswith("multiplt_corpus ")]
    assert state["runs"][corpus] == ("failed" if corpus in ended else "success"), (
        ended, state["runs"])
    assert set(state["runs"].values()) <= {"failed", "success"}, state["runs"]
    assert state["working"] == []
    assert state["paused"] == {dag_id: True for dag_id in CHAIN}  # as the fresh deployment had
    assert state["variables"] == {"multiplt_publish": [MINE, "mine"]}
