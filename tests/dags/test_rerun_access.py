"""A gated Hub model in a rerun: `model_info` describes it to anyone, so it passed the rerun
check and its generate failed at the download. The check now asks the Hub's auth-check."""

from __future__ import annotations


from tests.dags.test_evaluate_reruns import (VARIABLE, main_sha, model_repo, plan, refusal,
                                             task_warnings)
from multiplt_pipelines import plans  # noqa: E402 (dags/ is on sys.path)


def test_a_gated_model_without_access_is_refused_with_a_clear_message(test_hub, monkeypatch):
    model_repo(test_hub, "org/m")
    model_repo(test_hub, "org/gated")
    test_hub.gate("org/gated")
    url = test_hub.url
    denied = (f"'org/gated' is a gated repo, and the Hub token's account has no access to it: "
              f"ask for access at {url}/org/gated, or leave it out")
    assert plans.hub_revision({"model": "org/gated", "backend": "transformers"},
                              test_hub.token) == (None, denied, ("model",))
    # a run started by hand fails at once; a scheduled one leaves it out with a warning
    assert refusal(lambda: plan(monkeypatch, conf={"rerun_models": ["org/gated"]},
                                run_type="manual")) == f"rerun_models entry {denied}"
    with task_warnings() as warnings:
        entries = plan(monkeypatch, {"rerun_models": ["org/gated", "org/m"]})
    assert [e["model"] for e in entries] == ["org/m"]
    assert warnings == [f"left out of this run: rerun_models entry {denied}; the 1 other model(s) "
                        f"are evaluated{VARIABLE}"]
    # access granted: evaluated, pinned as any model
    test_hub.gate("org/gated", granted=True)
    entries = plan(monkeypatch, {"rerun_models": ["org/gated"]})
    assert [(e["model"], e["revision"]) for e in entries] == [
        ("org/gated", main_sha(test_hub, "org/gated"))]
    # only a gated repo costs the extra request
    test_hub.requests.clear()
    plan(monkeypatch, {"rerun_models": ["org/m"]})
    assert not [path for _, path in test_hub.requests if path.endswith("/auth-check")]
