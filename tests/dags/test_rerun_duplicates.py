"""`rerun_models` entries that mean one evaluation (one run folder, once each is pinned to its
commit) are evaluated once, with a warning: both entries wrote one run folder (the same
generate, score and record twice, concurrently, into one folder)."""

from __future__ import annotations


from tests.dags.test_evaluate_reruns import main_sha, model_repo, plan, task_warnings
from multiplt_pipelines import watching  # noqa: E402 (dags/ is on sys.path)

REPEATS = "evaluated once (both would write one run folder)"


def test_a_repeated_rerun_entry_is_evaluated_once_with_a_warning(test_hub, monkeypatch):
    model_repo(test_hub, "org/m")
    model_repo(test_hub, "org/other")
    rerun = {"rerun_models": ["org/m", "org/other", {"model": "org/m"},
                              {"model": "org/m", "revision": None, "tokenizer": None},
                              {"model": "org/m", "tokenizer": "org/other"}]}
    with task_warnings() as warnings:
        entries = plan(monkeypatch, rerun)
    runs = [e["run"] for e in entries]
    assert len(runs) == len(set(runs)) == 3  # one folder each: org/m, org/other, org/m with a tokenizer
    sha = main_sha(test_hub, "org/m")
    assert [(e["model"], e["revision"]) for e in entries] == [
        ("org/m", sha), ("org/other", main_sha(test_hub, "org/other")), ("org/m", sha)]
    assert warnings == [
        f"rerun_models entry 3 (model 'org/m', revision '{sha}') repeats entry 1: {REPEATS}",
        f"rerun_models entry 4 (model 'org/m', revision '{sha}') repeats entry 1: {REPEATS}"]


def test_a_model_and_its_current_commit_are_one_evaluation(test_hub, monkeypatch):
    """The check compared the entries as written, before the rerun pinned `org/m` to the
    commit its main is at: `org/m` and `{model: org/m, revision: <that commit>}` wrote one
    folder twice, without a warning."""
    model_repo(test_hub, "org/m")
    sha = main_sha(test_hub, "org/m")
    with task_warnings() as warnings:
        entries = plan(monkeypatch, {"rerun_models": ["org/m", {"model": "org/m", "revision": sha}]})
    assert [(e["model"], e["revision"]) for e in entries] == [("org/m", sha)]
    assert warnings == [
        f"rerun_models entry 2 (model 'org/m', revision '{sha}') repeats entry 1: {REPEATS}"]


def test_a_folder_with_and_without_its_slash_is_one_evaluation(test_hub, monkeypatch):
    """A storage URI (or folder) names one run folder with and without its trailing `/`
    (run_folder_name strips it): compared as written, they were two entries."""
    uri = "s3://bucket/training/m"
    model_repo(test_hub, "org/tok")  # a Hub tokenizer is looked up (pinned), whatever the model
    with task_warnings() as warnings:
        entries = plan(monkeypatch, {"rerun_models": [uri, uri + "/",
                                                      {"model": uri, "tokenizer": "org/tok"}]})
    assert [e["model"] for e in entries] == [uri, uri]
    assert len({e["run"] for e in entries}) == 2
    assert warnings == [f"rerun_models entry 2 (model '{uri}/') repeats entry 1: {REPEATS}"]


def test_evaluation_targets_keep_every_entry_in_order():
    """Repeats are found by run folder, once the entries are pinned (distinct_evaluations)."""
    settings = {"model": None, "rerun_models": [
        {"model": "org/m", "revision": "v1"}, "org/m", {"model": "org/m", "revision": "v1"}]}
    assert watching.evaluation_targets(settings, scheduled=True) == [
        {"model": "org/m", "revision": "v1", "tokenizer": None},
        {"model": "org/m", "revision": None, "tokenizer": None},
        {"model": "org/m", "revision": "v1", "tokenizer": None}]
