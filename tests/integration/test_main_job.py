"""The README's main job (scripts/embedded_airflow.py main-job, run by scripts/main.sh) on the
session's embedded Airflow: trigger multiplt_evaluate on the tiny model, wait, print pass@k; the
printed numbers are checked against the run folder's own completion and results files."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def _launcher():
    spec = importlib.util.spec_from_file_location("embedded_airflow_script",
                                                  REPO / "scripts" / "embedded_airflow.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_main_job_runs_every_installed_language_and_skips_missing_runtimes(monkeypatch):
    launcher = _launcher()
    assert "py" in launcher.installed_languages()
    # without Racket on PATH, Racket is not "installed" (as Julia is not, on Debian)
    real_which = launcher.shutil.which
    monkeypatch.setattr(launcher.shutil, "which", lambda b: None if b == "racket" else real_which(b))
    assert "rkt" not in launcher.installed_languages() and "py" in launcher.installed_languages()


def test_main_job_evaluates_the_tiny_model_and_prints_pass_at_k(embedded_airflow, tiny_model, capsys):
    assert (REPO / "dags" / "multiplt_evaluate.py").exists(), "the main job's DAG is missing"
    launcher = _launcher()
    args = launcher.argparse.Namespace(model=tiny_model, languages="py", n=2, max_new_tokens=128,
                                       limit=1, timeout=900)
    rc = launcher.main_job(embedded_airflow, args)
    out = capsys.readouterr().out
    assert rc == 0, out
    assert f"pass@k of {tiny_model}" in out
    [row] = [line for line in out.splitlines() if re.match(r"^py\s+1\s+\d\.\d{4}\s+1\s", line)]
    run_id = row.split()[4]

    # The real numbers: the run folder the results store points at holds one problem with two
    # completions and two executed results; pass@1 is the fraction of those that passed.
    from multiplt import storage
    from multiplt.results import read_store

    store = launcher_results_store(embedded_airflow)
    [record] = [r for r in read_store(store).to_dicts() if r["run_id"] == run_id and r["k"] == 1]
    files = storage.ls(record["run_uri"])
    [results_file] = [u for u in files if u.endswith(".results.json.gz")]
    [completions_file] = [u for u in files if u.endswith(".json.gz") and u != results_file]
    assert len(storage.read_json(completions_file)["completions"]) == 2
    results = storage.read_json(results_file)["results"]
    assert len(results) == 2
    passed = sum(r["status"] == "OK" and r["exit_code"] == 0 for r in results)
    assert record["n"] == 2 and record["num_problems"] == 1 and record["lang"] == "py"
    assert record["estimate"] == passed / 2
    assert row.split()[2] == f"{passed / 2:.4f}"


def launcher_results_store(airflow) -> str:
    """The results store the deployment writes to (as the launcher reads it)."""
    import configparser
    import os

    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(airflow.config_path)
    return os.environ.get("AIRFLOW__MULTIPLT__RESULTS_STORE") or cfg.get("multiplt", "results_store")
