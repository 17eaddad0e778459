"""The README's main job (scripts/embedded_airflow.py main-job, run by scripts/main.sh) on the
session's embedded Airflow: trigger multiplt_evaluate on the tiny model, wait, print pass@k."""

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
    if not (REPO / "dags" / "multiplt_evaluate.py").exists():
        pytest.skip("dags/multiplt_evaluate.py does not exist yet")
    launcher = _launcher()
    args = launcher.argparse.Namespace(model=tiny_model, languages="py", n=2, max_new_tokens=128,
                                       limit=1, timeout=900)
    rc = launcher.main_job(embedded_airflow, args)
    out = capsys.readouterr().out
    assert rc == 0, out
    assert f"pass@k of {tiny_model}" in out
    [row] = [line for line in out.splitlines() if re.match(r"^py\s+1\s+\d\.\d{4}\s+1\s", line)]
    assert float(row.split()[2]) in (0.0, 0.5, 1.0)  # n=2 completions of one problem
