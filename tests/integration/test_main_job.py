"""The README's main job (scripts/embedded_airflow.py main-job, run by scripts/main.sh) on the
session's embedded Airflow: the MultiPL-T chain on a planted corpus with the tiny model, followed
through its Asset events; the printed funnels and pass@k are checked against the stages' own
files (funnel.json, functions/, the evaluation's results) and the runs and events in Airflow."""

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


PLANTED = REPO / "tests" / "fixtures" / "corpus" / "planted"


def _steps(funnel: dict) -> list[str]:
    return [f"  {s['name']:<24} {s['in']:>7} -> {s['out']:>7}" for s in funnel["steps"]]


def _block(out: str, header: str) -> list[str]:
    """The printed funnel lines of one stage (its header line starts with `header`)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    block = []
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        block.append(line)
    return block


def _rows(folder: str) -> int:
    import io

    import polars as pl

    from multiplt import storage

    return sum(pl.read_parquet(io.BytesIO(storage.read_bytes(u))).height
               for u in storage.ls(folder) if u.endswith(".parquet"))


def test_main_job_runs_the_chain_and_prints_every_funnel(embedded_airflow, tiny_model, capsys):
    """The chain on a planted corpus: corpus -> testgen (the tiny model writes no assert, so it
    keeps 0 rows and the chain stops there, with the reason printed) and, beside it, the base
    model's evaluation, whose results event starts a publish run (nothing to publish)."""
    launcher = _launcher()  # puts plugins/ on sys.path
    from multiplt import storage
    from multiplt.results import read_store
    from multiplt_airflow import chain_job

    args = launcher.argparse.Namespace(model=tiny_model, languages="py", source=str(PLANTED),
                                       corpus_limit=None, n=1, max_new_tokens=32, limit=1,
                                       timeout=900)
    since = launcher.datetime.datetime.now(launcher.datetime.timezone.utc)
    try:
        rc = launcher.main_job(embedded_airflow, args)
    finally:  # the session's other tests find the chain paused and its Variables unset again
        for dag_id in chain_job.CHAIN:
            embedded_airflow.client.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": True})
        for key in ("multiplt_testgen", "multiplt_translate", "multiplt_finetune", "multiplt_publish"):
            embedded_airflow.client.request("DELETE", f"/api/v2/variables/{key}", ok=(204, 404))
    out = capsys.readouterr().out
    assert rc == 0, out
    [root] = re.findall(r"outputs under (\S+)", out)
    client = embedded_airflow.client

    # corpus: the printed funnel is funnel.json's; it kept exactly the rows of functions/, and
    # its Asset event announced that many rows and the folder
    corpus = storage.read_json(f"{root}/corpus/funnel.json")
    assert _block(out, "corpus: ") == _steps(corpus)
    kept = corpus["steps"][-1]["out"]
    assert kept == _rows(f"{root}/corpus/functions") > 0
    [corpus_run] = chain_job.runs_since(client, "multiplt_corpus", since)
    [event] = chain_job.events_of(client, "multiplt_corpus", corpus_run["dag_run_id"])
    assert event["extra"]["rows"] == kept
    assert event["extra"]["functions_uri"] == f"{root}/corpus/functions"

    # testgen ran on that event's functions (every kept function came in) and kept 0 rows: the
    # reason is printed, nothing was announced, and translate and finetune never ran
    testgen = storage.read_json(f"{root}/testgen/funnel.json")
    assert _block(out, "testgen: ") == _steps(testgen)
    assert testgen["steps"][0]["in"] == kept and testgen["steps"][-1]["out"] == 0
    [testgen_run] = chain_job.runs_since(client, "multiplt_testgen", since)
    assert testgen_run["state"] == "success"
    assert chain_job.events_of(client, "multiplt_testgen", testgen_run["dag_run_id"]) == []
    assert "  announce skipped: testgen kept 0 rows: nothing announced" in out
    assert chain_job.runs_since(client, "multiplt_translate", since) == []
    assert chain_job.runs_since(client, "multiplt_finetune", since) == []
    assert "translate: did not run" in out and "finetune: did not run" in out

    # the base model's evaluation: the printed pass@1 is the run folder's own results
    [row] = [line for line in out.splitlines() if re.match(r"^py\s+1\s+\d\.\d{4}\s+1\s", line)]
    run_id = row.split()[4]
    [record] = [r for r in read_store(launcher_results_store(embedded_airflow)).to_dicts()
                if r["run_id"] == run_id and r["k"] == 1]
    files = storage.ls(record["run_uri"])
    [results_file] = [u for u in files if u.endswith(".results.json.gz")]
    results = storage.read_json(results_file)["results"]
    passed = sum(r["status"] == "OK" and r["exit_code"] == 0 for r in results)
    assert len(results) == 1 and record["n"] == 1 and record["experiment"] == "main_job"
    assert record["estimate"] == passed and row.split()[2] == f"{passed:.4f}"

    # its results event started a publish run (dry run), which had nothing to publish
    [publish_run] = chain_job.runs_since(client, "multiplt_publish", since)
    assert publish_run["state"] == "success"
    assert "  plan_dataset skipped: no dataset to publish" in out
    assert "publish (dry run): nothing written to" in out


def launcher_results_store(airflow) -> str:
    """The results store the deployment writes to (as the launcher reads it)."""
    import configparser
    import os

    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(airflow.config_path)
    return os.environ.get("AIRFLOW__MULTIPLT__RESULTS_STORE") or cfg.get("multiplt", "results_store")
