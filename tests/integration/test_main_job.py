"""The README's main job (scripts/embedded_airflow.py main-job, run by scripts/main.sh) on the
session's embedded Airflow: the whole MultiPL-T chain on a planted corpus with the tiny model
from the test Hub as the base model and a replaying completions server as the teacher, followed
through its Asset events; the printed funnels are checked against the stages' own files
(funnel.json, data files, manifests), and every stage's rows against the fixture's exact counts."""

from __future__ import annotations

import re

import pytest

from tests.support.airflow import load_launcher, runs_since, task_log
from tests.support.chain_folders import stored_rows
from tests.support.hub import hub_dataset_rows

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_main_job_runs_every_installed_language_and_skips_missing_runtimes(monkeypatch):
    import shutil

    launcher = load_launcher()
    assert "py" in launcher.installed_languages()
    # without Racket on the sandbox's PATH, Racket is not "installed" (as Julia is not, on Debian)
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which",
                        lambda b, path=None: None if b == "racket" else real_which(b, path=path))
    assert "rkt" not in launcher.installed_languages() and "py" in launcher.installed_languages()


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


def test_main_job_runs_the_whole_chain_with_a_hub_model_and_a_served_teacher(
        embedded_airflow, on_session_hub, tiny_model, tmp_path, capsys):
    """scripts/main.sh --model ns/chain-tiny --teacher http://127.0.0.1:PORT/v1 --publish-repo
    ns/chain on a small planted corpus, through the REST API: the base model comes from the test
    Hub, the teacher is a completions server replaying recorded right and wrong tests and Lua
    translations, and every stage keeps exactly the rows the fixture says (tests/fixtures/chain.py),
    down to one fine-tuning epoch, the checkpoint's evaluation row and the publication on the Hub."""
    from huggingface_hub import HfApi

    from multiplt import storage
    from multiplt.results import read_store
    from multiplt_airflow import chain_job, job_models
    from tests.fixtures import chain as fx
    from tests.support.completions_server import CompletionsServer

    launcher = load_launcher()  # puts plugins/ on sys.path
    api = HfApi()
    api.create_repo("ns/chain-tiny", exist_ok=True)
    api.upload_folder(folder_path=tiny_model, repo_id="ns/chain-tiny")
    teacher = CompletionsServer(fx.teacher_recordings(fx.function_rows()), models=["teacher"]).start()
    args = launcher.argparse.Namespace(
        model="ns/chain-tiny", teacher=teacher.url, teacher_model=None, publish_repo="ns/chain",
        languages="lua", source=fx.write_corpus(tmp_path / "corpus"), corpus_limit=None, n=fx.N,
        max_new_tokens=16, limit=1, timeout=900)
    # a corpus announced while the chain is paused, before the job: it reaches the job's testgen
    # run with the job's own corpus, which names it in its log and starts no run for it
    # (other_inputs log, set by the job): the job's runs are its own corpus's
    embedded_airflow.client.wait_for_dag("multiplt_testgen")  # its Assets are registered
    [asset] = [a for a in embedded_airflow.client.request(
        "GET", "/api/v2/assets?name_pattern=multiplt_corpus_functions")["assets"]
        if a["name"] == "multiplt_corpus_functions"]
    stale = (tmp_path / "stale" / "functions").as_uri()
    embedded_airflow.client.request("POST", "/api/v2/assets/events", {
        "asset_id": asset["id"], "extra": {"functions_uri": stale, "rows": 5}})
    since = launcher.datetime.datetime.now(launcher.datetime.timezone.utc)
    keys = ("multiplt_testgen", "multiplt_translate", "multiplt_finetune", "multiplt_publish")
    # a Variable of the deployment's own, which the job overrides while it runs
    mine = '{"dataset_repo": "ns/mine", "dry_run": "/srv/pub"}'
    embedded_airflow.client.set_variable("multiplt_publish", mine, "mine")
    try:
        args.teacher_generation = job_models.check_job_models(args)
        assert args.teacher_generation == {"backend": "openai", "model": "teacher",
                                           "api_base": teacher.url}
        rc = launcher.main_job(embedded_airflow, args)
        # the job set its Variables back: the deployment's own as it was, the others deleted
        found = {key: chain_job.save_variables(embedded_airflow.client, [key])[key] for key in keys}
    finally:  # the session's other tests find the chain paused and its Variables unset again
        teacher.stop()
        for dag_id in chain_job.CHAIN:
            embedded_airflow.client.set_paused(dag_id, True)
        for key in keys:
            embedded_airflow.client.request("DELETE", f"/api/v2/variables/{key}", ok=(204, 404))
    out = capsys.readouterr().out
    assert rc == 0, out
    assert found == {"multiplt_testgen": None, "multiplt_translate": None,
                     "multiplt_finetune": None,
                     "multiplt_publish": {"value": mine, "description": "mine"}}
    [root] = re.findall(r"outputs under (\S+)", out)
    client = embedded_airflow.client

    def event(dag_id: str) -> dict:
        [run] = runs_since(client, dag_id, since)
        assert run["state"] == "success"
        [e] = chain_job.events_of(client, dag_id, run["dag_run_id"])
        return e

    # corpus: 8 functions in, `shortest` dropped as too short, 7 kept; the printed funnel is
    # funnel.json's and the event announces the 7 rows and where they are
    corpus = storage.read_json(f"{root}/corpus/funnel.json")
    assert _block(out, "corpus: ") == _steps(corpus)
    assert (corpus["steps"][0]["in"], corpus["steps"][-1]["out"]) == (8, fx.CORPUS_KEPT)
    assert stored_rows(f"{root}/corpus/functions") == fx.CORPUS_KEPT
    extra = event("multiplt_corpus")["extra"]
    assert (extra["rows"], extra["functions_uri"]) == (fx.CORPUS_KEPT, f"{root}/corpus/functions")

    # testgen, by the served teacher: the 7 functions in, the 4 with passing tests kept
    testgen = storage.read_json(f"{root}/testgen/funnel.json")
    assert _block(out, "testgen: ") == _steps(testgen)
    assert (testgen["steps"][0]["in"], testgen["steps"][-1]["out"]) == (fx.CORPUS_KEPT, len(fx.TESTS))
    assert stored_rows(f"{root}/testgen/tests") == len(fx.TESTS)
    extra = event("multiplt_testgen")["extra"]
    assert (extra["rows"], extra["model"]) == (len(fx.TESTS), "teacher")

    # the corpus queued before the job: named with the conf to run it by hand, not run
    [run] = runs_since(client, "multiplt_testgen", since)
    logged = task_log(client, "multiplt_testgen", run["dag_run_id"], "other_inputs")
    assert f'{stale} (multiplt_corpus_functions event of' in logged
    assert "no run started (other_inputs is log" in logged
    assert f'"functions": "{stale}"' in logged

    # translate into Lua, by the teacher: 4 functions, 8 samples, the 3 right ones kept
    lua = storage.read_json(f"{root}/translate/funnel.json")["lua"]
    assert [lua[k] for k in ("functions_in", "prompts_built", "translations_sampled", "passed",
                             "after_rouge_l")] == [4, 4, 8, 3, 3]
    assert ("  lua: functions_in 4 -> prompts_built 4 -> translations_sampled 8 -> passed 3 -> "
            "after_todo 3 -> after_exact_dedup 3 -> after_rouge_l 3") in out
    assert stored_rows(f"{root}/translate/data") == len(fx.LUA_KEPT)
    extra = event("multiplt_translate")["extra"]
    assert (extra["lang"], extra["rows"]) == ("lua", len(fx.LUA_KEPT))
    # every completion came from the teacher: 7 test prompts and 4 Lua prompts, n=2 each
    posts = [body for method, _, body in teacher.requests if method == "POST"]
    assert len(posts) == (fx.CORPUS_KEPT + len(fx.TESTS)) * fx.N
    assert {b["model"] for b in posts} == {"teacher"}

    # finetune: one epoch of the Hub model on the 3 rows, one checkpoint, announced
    extra = event("multiplt_finetune")["extra"]
    [output] = extra["outputs"]
    assert (output["lang"], extra["base_model"], extra["experiment"]) == ("lua", "ns/chain-tiny", "main_job")
    [checkpoint] = storage.read_jsonl(storage.join(output["out"], "manifest.jsonl"))
    assert (checkpoint["epoch"], checkpoint["tag"]) == (1, "lua-main_job-epoch1")
    assert f"  lua: 1 checkpoint(s) [lua-main_job-epoch1] in {output['out']}" in out

    # evaluation: the base model (epoch 0) and the checkpoint (epoch 1), one problem each, in
    # the results store and the printed pass@k table
    rows = [r for r in read_store(launcher_results_store(embedded_airflow)).to_dicts()
            if r["experiment"] == "main_job" and r["k"] == 1 and r["run_id"] in out]
    assert sorted((r["epoch"] or 0, r["lang"], r["num_problems"], r["n"]) for r in rows) == [
        (0, "lua", 1, fx.N), (1, "lua", 1, fx.N)]
    assert {r["model"] for r in rows if r["epoch"]} == {output["out"]}
    for r in rows:  # the printed pass@1 line of each is the store's
        assert re.search(rf"^lua\s+1\s+{r['estimate']:.4f}\s+1\s+{re.escape(r['run_id'])}$", out, re.M)

    # publication on the Hub: the Lua dataset (3 rows) and the tagged checkpoint
    assert hub_dataset_rows("ns/chain") == len(fx.LUA_KEPT)
    # (a publish run consumes every checkpoints event since the DAG's previous Asset-triggered
    # run, as Airflow's scheduler windows events: earlier tests of this session's deployment,
    # made while the DAG was paused, may add their own tags, never one of this experiment)
    tags = [t.name for t in api.list_repo_refs("ns/chain").tags]
    assert [t for t in tags if "-main_job-" in t] == ["lua-main_job-epoch1"]
    assert re.search(r"^publish: model ns/chain: checkpoint tags \[(.*, )?lua-main_job-epoch1(, .*)?\]$",
                     out, re.M)
    assert all(r["state"] == "success" for r in runs_since(client, "multiplt_publish", since))


def launcher_results_store(airflow) -> str:
    """The results store the deployment writes to (as the launcher reads it)."""
    import configparser
    import os

    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(airflow.config_path)
    return os.environ.get("AIRFLOW__MULTIPLT__RESULTS_STORE") or cfg.get("multiplt", "results_store")
