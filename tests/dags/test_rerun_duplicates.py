"""A `rerun_models` entry given twice (the same model, revision and tokenizer) is evaluated once,
with a warning: both entries wrote one run folder (the same generate, score and record twice,
concurrently, into one folder)."""

from __future__ import annotations


from tests.dags.test_evaluate_reruns import main_sha, model_repo, plan, task_warnings
from multiplt_pipelines import watching  # noqa: E402 (dags/ is on sys.path)


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
        "rerun_models entry 3 (model 'org/m') repeats entry 1: evaluated once (both would write "
        "one run folder)",
        "rerun_models entry 4 (model 'org/m') repeats entry 1: evaluated once (both would write "
        "one run folder)"]


def test_evaluation_targets_keep_the_first_of_repeated_entries():
    warned = []
    settings = {"model": None, "rerun_models": [
        {"model": "org/m", "revision": "v1"}, "org/m", {"model": "org/m", "revision": "v1"}]}
    assert watching.evaluation_targets(settings, scheduled=True, warn=warned.append) == [
        {"model": "org/m", "revision": "v1", "tokenizer": None},
        {"model": "org/m", "revision": None, "tokenizer": None}]
    assert warned == ["rerun_models entry 3 (model 'org/m', revision 'v1') repeats entry 1: "
                      "evaluated once (both would write one run folder)"]
