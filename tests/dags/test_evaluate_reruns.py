"""multiplt_evaluate's reruns (a scheduled run of `rerun_models`, or a run started by hand
without `model`) against the test Hub (tests/support/hub.py): an unpinned Hub model is
evaluated at the commit its default branch is at when the run starts (its own run folder, the
commit as the results' revision), a model or revision the Hub lacks is left out of a scheduled
run with a warning (and fails a run started by hand at once), and a Hub that cannot be asked
fails `plan` with a retry."""

from __future__ import annotations

import contextlib
import json
import logging
from types import SimpleNamespace

import pytest

from tests.dags.test_pipeline_plans import defaults, load_dag
from multiplt_pipelines import params as schemas  # noqa: E402 (dags/ is on sys.path)
from multiplt_pipelines import plans  # noqa: E402
from multiplt_pipelines import watching  # noqa: E402

PARAMS = watching.evaluate_params(schemas.EVALUATE, "@weekly")
VARIABLE = " (rerun_models from the Airflow Variable multiplt_evaluate)"


def model_repo(hub, repo_id: str, config: bool = True):
    """A model repo on the test Hub; with `config`, main holds a config.json (a model)."""
    repo = hub.add_model(repo_id)
    if config:
        move_main(hub, repo_id)
    return repo


def move_main(hub, repo_id: str) -> str:
    """A new commit on main (as a model's authors push new weights); its sha."""
    repo = hub.repo("model", repo_id)
    head = repo.commits[repo.branches["main"]]
    commit = repo.commit(head.oid, {**head.files, "config.json": (json.dumps(
        {"commit": len(repo.commits)}).encode(), False)}, "new weights")
    repo.branches["main"] = commit.oid
    return commit.oid


def main_sha(hub, repo_id: str) -> str:
    return hub.repo("model", repo_id).branches["main"]


def plan(monkeypatch, variable: dict | None = None, conf: dict | None = None,
         run_type: str = "scheduled"):
    """The plan task as Airflow calls it: a scheduled run reads the Variable (`variable`), a
    manual one its conf merged into the Params (model null: the DAG's cron is set)."""
    monkeypatch.setenv("AIRFLOW__MULTIPLT__EVALUATE_SCHEDULE", "@weekly")
    if variable is None:
        monkeypatch.delenv("AIRFLOW_VAR_MULTIPLT_EVALUATE", raising=False)
    else:
        monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_EVALUATE", json.dumps(variable))
    task = load_dag("multiplt_evaluate").get_task("plan").python_callable
    conf = conf or {}
    return task("file:///DATA", "file:///DATA/results.parquet",
                params={**defaults(PARAMS, languages=["lua"]), **conf},
                dag_run=SimpleNamespace(run_type=run_type, conf=conf))


@contextlib.contextmanager
def task_warnings():
    """The WARNING messages of the `airflow.task` logger while the block runs. Airflow sets its
    logging up at the first DAG load and replaces the handlers then (caplog saw nothing in a test
    run alone): the DAG is loaded first, the handler attached after."""
    load_dag("multiplt_evaluate")
    warnings: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: warnings.append(record.getMessage())
    logger = logging.getLogger("airflow.task")
    logger.addHandler(handler)
    try:
        yield warnings
    finally:
        logger.removeHandler(handler)


def refusal(call) -> str:
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException) as raised:
        call()
    return str(raised.value)


def test_a_scheduled_rerun_evaluates_an_unpinned_hub_model_at_its_current_commit(
        test_hub, monkeypatch, tmp_path):
    """The rerun named its folder `...-main-...` and generate, finding every completion there,
    returned before loading the model: after main moved, the old commit's scores were recorded
    again."""
    model_repo(test_hub, "org/m")
    pinned = model_repo(test_hub, "org/pinned")
    pinned.tags["v1"] = pinned.branches["main"]
    (tmp_path / "local").mkdir()
    monkeypatch.setenv("AIRFLOW__MULTIPLT__RUNTIME", "local")
    rerun = {"rerun_models": ["org/m", {"model": "org/pinned", "revision": "v1"},
                              str(tmp_path / "local"), "s3://bucket/models/m"]}
    first = main_sha(test_hub, "org/m")
    entries = plan(monkeypatch, rerun)
    assert [(e["model"], e["revision"]) for e in entries] == [
        ("org/m", first), ("org/pinned", "v1"), (str(tmp_path / "local"), None),
        ("s3://bucket/models/m", None)]
    m = entries[0]
    assert m["run"] == f"file:///DATA/evaluate/humaneval-lua-org_m-{first}-0.2"
    assert m["generate"][m["generate"].index("--revision") + 1] == first
    # local folders and storage URIs are left as they are: no revision, the `main` folder
    assert entries[2]["run"].endswith("-main-0.2") and "--revision" not in entries[2]["generate"]
    assert "--revision" not in entries[3]["generate"]
    asked = sorted({path for method, path in test_hub.requests if method == "GET"})
    assert asked == ["/api/models/org/m", "/api/models/org/pinned/revision/v1"]

    moved = move_main(test_hub, "org/m")
    again = plan(monkeypatch, rerun)
    assert again[0]["revision"] == moved != first
    assert again[0]["run"] == f"file:///DATA/evaluate/humaneval-lua-org_m-{moved}-0.2"
    assert again[1]["run"] == entries[1]["run"]  # a pinned revision keeps its folder

    # a run started by hand without `model` reruns the list the same way
    by_hand = plan(monkeypatch, conf={"rerun_models": ["org/m"]}, run_type="manual")
    assert [(e["model"], e["revision"]) for e in by_hand] == [("org/m", moved)]
    # a run that names its model evaluates what it names: the default branch, no Hub lookup
    test_hub.requests.clear()
    named = plan(monkeypatch, conf={"model": "org/m"}, run_type="manual")
    assert (named[0]["revision"], named[0]["run"]) == (
        None, "file:///DATA/evaluate/humaneval-lua-org_m-main-0.2")
    assert test_hub.requests == []


def test_a_scheduled_rerun_leaves_out_what_the_hub_lacks_with_a_warning(test_hub, monkeypatch):
    """One typo'd model in rerun_models failed its generate, and every other model's execute,
    score and record waited on all generate tasks: nothing was scored."""
    model_repo(test_hub, "org/m")
    model_repo(test_hub, "org/empty", config=False)
    url = test_hub.url
    rerun = {"rerun_models": ["org/typo", "org/m", {"model": "org/m", "revision": "v9"},
                              "org/empty"]}
    with task_warnings() as warnings:
        entries = plan(monkeypatch, rerun)
    assert [(e["model"], e["revision"]) for e in entries] == [("org/m", main_sha(test_hub, "org/m"))]
    empty = main_sha(test_hub, "org/empty")
    assert warnings == [
        f"left out of this run: rerun_models entry 'org/typo' not found on the Hub ({url}); the 1 "
        f"other model(s) are evaluated{VARIABLE}",
        f"left out of this run: rerun_models entry 'org/m': revision 'v9' not found on the Hub "
        f"({url}); the 1 other model(s) are evaluated{VARIABLE}",
        f"left out of this run: rerun_models entry 'org/empty' at its default branch (commit "
        f"{empty}) holds no model: no config.json; the 1 other model(s) are evaluated{VARIABLE}"]

    # none left: the run fails (no retry), naming each and the Variable
    got = refusal(lambda: plan(monkeypatch, {"rerun_models": ["org/typo", "org/typo2"]}))
    assert got == (f"nothing to evaluate: rerun_models entry 'org/typo' not found on the Hub "
                   f"({url}); rerun_models entry 'org/typo2' not found on the Hub ({url}) (from "
                   f"the Airflow Variable multiplt_evaluate)")
    # a run started by hand fails at once on the first such model
    assert refusal(lambda: plan(monkeypatch, conf=rerun, run_type="manual")) == (
        f"rerun_models entry 'org/typo' not found on the Hub ({url})")


def test_a_private_model_without_a_token_says_so(test_hub, monkeypatch):
    test_hub.add_model("org/private", private=True)
    monkeypatch.delenv("HF_TOKEN")  # and the fixture's fresh HF_HOME holds no saved token
    pinned, why, keys = plans.hub_revision({"model": "org/private", "backend": "transformers"})
    assert pinned is None and keys == ("model",) and why == (
        f"'org/private' not found on the Hub ({test_hub.url}) (a private repo needs HF_TOKEN or "
        "the huggingface_default connection, and none is set)")
    # the access check (of a gated repo) says the same of a repo it is not shown
    from multiplt.hub.access import gated_reason

    assert gated_reason("org/private", None) == why


def test_a_hub_that_cannot_be_asked_fails_plan_with_a_retry(test_hub, monkeypatch):
    """Not a silent fallback to `main`: a rerun of the old folder is what the pinning avoids."""
    from huggingface_hub import constants

    model_repo(test_hub, "org/m")
    rerun = {"rerun_models": ["org/m"]}
    test_hub.fail("GET", r"^/api/models/org/m$", 503)
    with pytest.raises(plans.HubLookupFailed) as raised:  # not AirflowFailException: retried
        plan(monkeypatch, rerun)
    assert raised.value.retry
    assert str(raised.value) == (f"cannot ask the Hub ({test_hub.url}) which commit of 'org/m' "
                                 "to evaluate (HTTP 503: injected HTTP 503); the task is retried")
    assert plan(monkeypatch, rerun)[0]["revision"] == main_sha(test_hub, "org/m")  # the retry

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert refusal(lambda: plan(monkeypatch, rerun)) == (
        f"HF_HUB_OFFLINE is set: cannot ask the Hub ({test_hub.url}) which commit of 'org/m' to "
        "evaluate (a rerun evaluates an unpinned Hub model at its current commit); give its "
        "`revision` (a commit), or unset HF_HUB_OFFLINE")
    sha = main_sha(test_hub, "org/m")  # a pinned revision cannot move: generate reads its cache
    assert plan(monkeypatch, {"rerun_models": [{"model": "org/m", "revision": sha}]})[0][
        "revision"] == sha
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    from huggingface_hub.utils import close_session

    test_hub.stop()
    close_session()  # a pooled connection would still reach the stopped server's handler
    with pytest.raises(plans.HubLookupFailed, match=r"cannot ask the Hub .* which commit of "
                       r"'org/m' to evaluate \(ConnectError: .*\); the task is retried") as raised:
        plan(monkeypatch, rerun)
    assert raised.value.retry


def test_only_hub_models_are_looked_up():
    for run in ({"model": "/models/m", "backend": "transformers"},
                {"model": "file:///models/m", "backend": "vllm"},
                {"model": "s3://b/t/out", "revision": "lua-multiplt-epoch1", "backend": "transformers"},
                {"model": "served-model", "backend": "openai"},
                {"model": "org/m", "backend": "replay"},
                {"model": "s3:/b/m", "backend": "transformers"}):  # a mistyped URI: generate's
        assert not plans.hub_model(run), run
        assert plans.hub_revision(run) == (run, None, ())
    assert plans.hub_model({"model": "org/m", "backend": "vllm"})


def test_rerun_models_entries_from_the_variable_are_refused_naming_it(monkeypatch):
    """A value of the Variable refused by the first task says it came from there, like the
    other chain DAGs (checks.variable_source); an entry of its rerun_models counts as the
    Variable's. The same value in a manual run's conf is refused unnamed."""
    def both(variable: dict, message: str):
        got = refusal(lambda: plan(monkeypatch, variable))
        assert got == f"{message} (from the Airflow Variable multiplt_evaluate)", got
        assert refusal(lambda: plan(monkeypatch, conf=variable, run_type="manual")) == message

    both({"rerun_models": ["org/bad name"]},
         "rerun_models entry 'org/bad name': Param model: 'org/bad name' is not a local folder or "
         "storage URI, nor a Hub repo id: Repo id must use alphanumeric chars, '-', '_' or '.'. "
         "The name cannot start or end with '-' or '.' and the maximum length is 96: "
         "'org/bad name'.")
    both({"rerun_models": [{"model": "org/m", "revison": "v1"}]},
         "Param rerun_models: entry {'model': 'org/m', 'revison': 'v1'} has key 'revison' (each "
         "entry a model name or {model, revision, tokenizer, tokenizer_revision})")
    both({"rerun_models": [{"revision": "v1"}]},
         "Param rerun_models: entry {'revision': 'v1'} names no model (each entry a model name "
         "or {model, revision, tokenizer, tokenizer_revision})")
    both({"rerun_models": "org/m"}, "Param rerun_models: 'org/m' is not a list (each entry a "
         "model name or {model, revision, tokenizer, tokenizer_revision})")
    both({"rerun_models": [{"model": "org/m", "tokenizer": "./tok"}]},
         "rerun_models entry 'org/m': Param tokenizer: './tok' is a relative path: give an "
         "absolute path or a URI; a relative path would be read from the task's working folder "
         "(AIRFLOW_HOME)")
    both({"rerun_models": ["org/m"], "backend": "replay", "replay_source": "runs/{lang}"},
         "Param replay_source: 'runs/{lang}' is a relative path: give an absolute path or a URI; "
         "a relative path would be read from the task's working folder (AIRFLOW_HOME)")
    # a Variable that sets only some of the refused Params names those
    assert refusal(lambda: plan(monkeypatch, {"rerun_models": ["org/m"], "backend": "replay"})) == (
        "Params backend, replay_source: the replay backend needs --replay-source (a completion "
        "folder or JSONL) (backend from the Airflow Variable multiplt_evaluate)")
