"""A Hub `tokenizer` of a `rerun_models` entry is pinned as its model is: the rerun's plan asks
the Hub (tests/hub_server.py) which commit the tokenizer's default branch is at, passes it to
generate as `--tokenizer-revision`, and the run folder's name changes with it. Without this the
model was pinned but the tokenizer loaded at whatever its main was when each generate ran: two
languages of one evaluation, or a rerun, could use two tokenizers, and the run identity did not
say which."""

from __future__ import annotations

import pytest

from tests.dags.test_evaluate_reruns import (VARIABLE, main_sha, model_repo, move_main, plan,
                                             refusal, task_warnings)
from multiplt import cli
from multiplt_pipelines import plans  # noqa: E402 (dags/ is on sys.path)


def flag(entry: dict, name: str) -> str | None:
    argv = entry["generate"]
    return argv[argv.index(name) + 1] if name in argv else None


def test_a_rerun_pins_a_hub_tokenizer_to_its_current_commit(test_hub, monkeypatch):
    model_repo(test_hub, "org/m")
    model_repo(test_hub, "org/tok")
    rerun = {"rerun_models": [{"model": "org/m", "tokenizer": "org/tok"}]}
    first = main_sha(test_hub, "org/tok")
    [entry] = plan(monkeypatch, rerun)
    assert (flag(entry, "--tokenizer"), flag(entry, "--tokenizer-revision")) == ("org/tok", first)
    assert flag(entry, "--revision") == main_sha(test_hub, "org/m")
    # what plan passes, generate takes: the flag parses, to that revision
    args = cli.build_parser().parse_args(entry["generate"])
    assert (args.tokenizer, args.tokenizer_revision) == ("org/tok", first)

    # the tokenizer's main moves, the model's does not: a new commit, a new run folder
    moved = move_main(test_hub, "org/tok")
    [again] = plan(monkeypatch, rerun)
    assert flag(again, "--tokenizer-revision") == moved != first
    assert again["run"] != entry["run"] and again["revision"] == entry["revision"]
    # the same commit spelled out is the same evaluation (one run folder)
    [spelled] = plan(monkeypatch, {"rerun_models": [
        {"model": "org/m", "tokenizer": "org/tok", "tokenizer_revision": moved}]})
    assert (spelled["run"], spelled["generate"]) == (again["run"], again["generate"])
    asked = sorted({path for method, path in test_hub.requests if method == "GET"})
    assert asked == ["/api/models/org/m", "/api/models/org/tok",
                     f"/api/models/org/tok/revision/{moved}"]


def test_a_given_tokenizer_revision_is_kept_and_checked(test_hub, monkeypatch):
    model_repo(test_hub, "org/m")
    tok = model_repo(test_hub, "org/tok")
    tok.tags["v1"] = tok.branches["main"]
    url = test_hub.url
    rerun = {"rerun_models": [
        {"model": "org/m", "tokenizer": "org/tok", "tokenizer_revision": "v1"},
        {"model": "org/m", "tokenizer": "org/tok", "tokenizer_revision": "v9"},
        {"model": "org/m", "tokenizer": "org/typo"}]}
    with task_warnings() as warnings:
        entries = plan(monkeypatch, rerun)
    assert [flag(e, "--tokenizer-revision") for e in entries] == ["v1"]
    assert warnings == [
        f"left out of this run: rerun_models entry 'org/m': tokenizer 'org/tok': revision 'v9' not "
        f"found on the Hub ({url}); the 1 other model(s) are evaluated{VARIABLE}",
        f"left out of this run: rerun_models entry 'org/m': tokenizer 'org/typo' not found on the "
        f"Hub ({url}); the 1 other model(s) are evaluated{VARIABLE}"]
    # a run started by hand fails at once
    assert refusal(lambda: plan(monkeypatch, conf={"rerun_models": rerun["rerun_models"][1:]},
                                run_type="manual")) == (
        f"rerun_models entry 'org/m': tokenizer 'org/tok': revision 'v9' not found on the Hub ({url})")
    # a run's own `model` and `tokenizer` (no rerun_models entry): the Param is named
    from multiplt_pipelines.checks import BadParams

    with pytest.raises(BadParams) as raised:
        plans.rerun_revisions([{"model": "/models/m", "tokenizer": "org/typo",
                                "backend": "transformers"}], [False], drop=False,
                               token=test_hub.token)
    assert (str(raised.value), raised.value.keys) == (
        f"Param tokenizer: 'org/typo' not found on the Hub ({url})", ("tokenizer",))
    # what rerun_revisions words both from: the why of the tokenizer alone, and its key
    assert plans.hub_revision({"model": "org/m", "tokenizer": "org/typo", "backend": "transformers"},
                              test_hub.token) == (None, f"'org/typo' not found on the Hub ({url})",
                                                  ("tokenizer",))


def test_a_hub_tokenizer_is_pinned_whatever_loads_the_model(test_hub, monkeypatch, tmp_path):
    """A local model folder with a Hub tokenizer: the model as it is, the tokenizer pinned; the
    replay backend loads no tokenizer, so it is not looked up; a local tokenizer has no Hub
    revision."""
    model_repo(test_hub, "org/tok")
    (tmp_path / "m").mkdir()
    (tmp_path / "tok").mkdir()
    run = {"model": str(tmp_path / "m"), "tokenizer": "org/tok", "backend": "transformers"}
    sha = main_sha(test_hub, "org/tok")
    assert plans.hub_revision(run) == ({**run, "tokenizer_revision": sha}, None, ())
    assert plans.hub_revision({**run, "backend": "openai"})[0]["tokenizer_revision"] == sha
    for other in ({**run, "backend": "replay"}, {**run, "tokenizer": str(tmp_path / "tok")},
                  {**run, "tokenizer": "s3://b/tok"}, {**run, "tokenizer": None}):
        assert not plans.hub_tokenizer(other)
        assert plans.hub_revision(other) == (other, None, ())


def test_a_tokenizer_revision_needs_a_hub_tokenizer(monkeypatch):
    """Refused by plan as generate refuses it, in the entry's keys (no Param tokenizer_revision
    exists, and the entry has no CLI flags), naming the entry (no Hub lookup)."""
    for entry, message in (
            ({"model": "org/m", "tokenizer_revision": "v1"},
             "tokenizer_revision 'v1' needs a Hub tokenizer (a tokenizer key); without one the "
             "model's own tokenizer is loaded at its revision"),
            ({"model": "org/m", "tokenizer": "s3://b/tok", "tokenizer_revision": "v1"},
             "tokenizer_revision 'v1' needs a Hub tokenizer; tokenizer 's3://b/tok' is a local "
             "path or storage URI, which has no revisions"),
            ({"model": "org/m", "tokenizer": "org/tok", "tokenizer_revision": " "},
             "tokenizer_revision is empty; give a Hub branch, tag or commit, or leave it out")):
        got = refusal(lambda: plan(monkeypatch, conf={"rerun_models": [entry]}, run_type="manual"))
        assert got == f"rerun_models entry 'org/m': {message}"
        assert "--" not in got and "Params" not in got
    # from the Airflow Variable: said so, as every refused value of it
    got = refusal(lambda: plan(monkeypatch, {"rerun_models": [{"model": "org/m", "tokenizer_revision": "v1"}]}))
    assert got.startswith("rerun_models entry 'org/m': tokenizer_revision 'v1' needs a Hub tokenizer")
    assert got.endswith(" (from the Airflow Variable multiplt_evaluate)")


def test_an_unpinned_hub_tokenizer_offline_fails_plan_without_retry(test_hub, monkeypatch):
    from huggingface_hub import constants

    model_repo(test_hub, "org/tok")
    sha = main_sha(test_hub, "org/tok")
    model = "/models/m"  # a local model: only the tokenizer is looked up
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(plans.HubLookupFailed) as raised:
        plans.hub_revision({"model": model, "tokenizer": "org/tok", "backend": "transformers"})
    assert not raised.value.retry
    assert str(raised.value) == (
        f"HF_HUB_OFFLINE is set: cannot ask the Hub ({test_hub.url}) which commit of tokenizer "
        "'org/tok' to evaluate (a rerun evaluates an unpinned Hub tokenizer at its current "
        "commit); give its `tokenizer_revision` (a commit), or unset HF_HUB_OFFLINE")
    pinned = {"model": model, "tokenizer": "org/tok", "tokenizer_revision": sha,
              "backend": "transformers"}
    assert plans.hub_revision(pinned) == (pinned, None, ())
