"""The watcher announces a new model only once it can be loaded, at that commit.

A repo is created before its weights are uploaded (push_to_hub creates it, then commits): the
watcher announced it at creation, the runs it started failed for good on an empty repo, and it
was never announced again. A new model now waits in the watermark (`pending`) until its
default branch holds config.json and weights, checked at every poll, and is announced with the
commit it then holds; one that never gets there is dropped after `pending_hours` (a warning).
Also: a listing full of models created since the previous poll is listed again, larger."""

from __future__ import annotations

import datetime

import pytest

from multiplt.hub.watch import Listing, RepoGone, WatchList, loadable, poll
from tests.unit.hub.test_watch_trigger import (FakeStateStore, add, announced, make_trigger, upload)

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")


def main_commit(hub, repo_id: str) -> str:
    return hub.repo("model", repo_id).branches["main"]


def listings(hub) -> int:
    return sum(1 for method, path in hub.requests if method == "GET" and path == "/api/models")


def warnings(logs) -> list[str]:
    return [e["event"] for e in logs if e["log_level"] == "warning"]


def test_a_new_repo_is_announced_once_its_main_holds_config_and_weights(test_hub):
    """The reviewer's reproduction: `up/base-v2` created (no upload yet) was announced at once."""
    add(test_hub, "up/base-v1")
    store = FakeStateStore()
    watch = {"authors": ["up"], "endpoint": test_hub.url, "poll_interval": 1}
    assert announced(make_trigger(watch, store)) == []  # the baseline
    test_hub.add_model("up/base-v2")  # created; the upload is under way
    assert announced(make_trigger(watch, store)) == []
    (mark,) = store.values.values()
    assert list(mark["pending"]) == ["up/base-v2"]
    upload(test_hub, "up/base-v2", files=("config.json",))  # the config, weights still coming
    assert announced(make_trigger(watch, store)) == []  # a restarted triggerer: still waiting
    commit = upload(test_hub, "up/base-v2", files=("model.safetensors",))
    assert announced(make_trigger(watch, store)) == [("up/base-v2", commit)]
    assert announced(make_trigger(watch, store)) == []  # once
    (mark,) = store.values.values()
    assert "pending" not in mark and "up/base-v2" in mark["models"]
    upload(test_hub, "up/base-v2", files=("README.md",))  # a later commit: no new announcement
    assert announced(make_trigger(watch, store)) == []


def test_a_recreated_repo_is_announced_at_its_new_commit(test_hub):
    """Each announcement names its commit, so the runs of a repo deleted and created again use
    its new weights (and a run folder of their own), not the first repo's `main`."""
    from huggingface_hub import HfApi

    add(test_hub, "ns/old")
    store = FakeStateStore()
    watch = {"authors": ["ns"], "endpoint": test_hub.url, "poll_interval": 1}
    assert announced(make_trigger(watch, store)) == []
    first = add(test_hub, "ns/m")
    assert announced(make_trigger(watch, store)) == [("ns/m", first)]
    HfApi().delete_repo("ns/m")
    test_hub.add_model("ns/m")  # created again, weights not there yet
    assert announced(make_trigger(watch, store)) == []
    second = upload(test_hub, "ns/m")
    assert second != first
    assert announced(make_trigger(watch, store)) == [("ns/m", second)]


def test_announce_existing_waits_for_weights_too(test_hub):
    add(test_hub, "ns/ready")
    test_hub.add_model("ns/empty")
    trigger = make_trigger({"authors": ["ns"], "endpoint": test_hub.url, "poll_interval": 1,
                            "announce_existing": True}, FakeStateStore())
    assert announced(trigger) == [("ns/ready", main_commit(test_hub, "ns/ready"))]
    commit = upload(test_hub, "ns/empty")
    assert announced(trigger) == [("ns/empty", commit)]


def test_a_repo_that_never_gets_weights_is_dropped_with_a_warning(test_hub):
    """Kept at most `pending_hours` after it was first listed (a watermark written that long ago
    stands in for the wait), then dropped with a warning and never announced."""
    from structlog.testing import capture_logs

    add(test_hub, "ns/old")
    store = FakeStateStore()
    watch = {"authors": ["ns"], "endpoint": test_hub.url, "poll_interval": 1, "pending_hours": 2}
    assert announced(make_trigger(watch, store)) == []
    test_hub.add_model("ns/placeholder")
    assert announced(make_trigger(watch, store)) == []
    (key,) = store.values
    store.values[key]["pending"]["ns/placeholder"]["since"] = "2020-01-01T00:00:00+00:00"
    with capture_logs() as logs:
        assert announced(make_trigger(watch, store)) == []
    assert warnings(logs) == ["not announcing new model ns/placeholder: no config.json and weights "
                              "on its default branch 2 h after it was listed"]
    assert "pending" not in store.values[key]
    upload(test_hub, "ns/placeholder")  # too late: it is no longer waited for
    assert announced(make_trigger(watch, store)) == []


def test_a_failed_check_keeps_the_model_waiting(test_hub, monkeypatch):
    """The Hub failing on a new model's files is a warning; it is checked again next poll."""
    import huggingface_hub.utils._http as hf_http
    from structlog.testing import capture_logs

    monkeypatch.setattr(hf_http.time, "sleep", lambda seconds: None)  # the client's own backoff
    add(test_hub, "ns/old")
    store = FakeStateStore()
    watch = {"authors": ["ns"], "endpoint": test_hub.url, "poll_interval": 1}
    assert announced(make_trigger(watch, store)) == []
    commit = add(test_hub, "ns/m")
    test_hub.fail("GET", r"^/api/models/ns/m$", 500, times=20)
    with capture_logs() as logs:
        assert announced(make_trigger(watch, store)) == []
    assert [w.split(" failed")[0] for w in warnings(logs)] == ["checking the files of new model ns/m"]
    test_hub.faults.clear()
    assert announced(make_trigger(watch, store)) == [("ns/m", commit)]


def test_what_counts_as_loadable():
    assert loadable(["config.json", "model.safetensors"])
    assert loadable([".gitattributes", "config.json", "pytorch_model.bin", "README.md"])
    assert not loadable([".gitattributes"])  # just created
    assert not loadable(["config.json"])
    assert not loadable(["model.safetensors"])
    assert not loadable(["config.json", "training_args.bin"])  # a Trainer's, no weights
    assert not loadable(["sub/config.json", "sub/model.safetensors"])  # not at the top
    assert not loadable(["adapter_config.json", "adapter_model.safetensors"])  # no config.json
    shards = ["config.json", "model.safetensors.index.json", "model-00001-of-00003.safetensors",
              "model-00002-of-00003.safetensors"]
    assert not loadable(shards)  # an upload in several commits, under way
    assert loadable([*shards, "model-00003-of-00003.safetensors"])
    assert not loadable(["config.json", "model.safetensors.index.json"])


def listing(*models) -> Listing:
    return Listing(list(models), [], len(models), "http://hub")


def test_poll_keeps_waiting_models_bounded():
    """Pure: the wait bound, a repo gone while waiting, at most `keep_pending` waiting, a
    re-created repo waiting anew; a watermark without `pending` (an earlier version's) has none."""
    t = lambda day: f"2025-12-{day:02d}T00:00:00.000000+00:00"  # noqa: E731
    watch = WatchList.from_dict({"authors": ["o"], "pending_hours": 24})
    ready: dict[str, str] = {}

    def check(model_id):
        if model_id == "o/gone":
            raise RepoGone(model_id)
        return ready.get(model_id)

    base = poll(listing(("o/a", t(1))), None, watch, check, T0)
    assert base.watermark == {"models": {}, "cutoff": t(1)}
    step = poll(listing(("o/c", t(3)), ("o/b", t(2)), ("o/a", t(1))), base.watermark, watch, check, T0,
                keep_pending=1)
    assert step.new == ["o/b", "o/c"] and step.announced == []
    assert step.waiting == ["o/c"] and [m for m, _ in step.dropped] == ["o/b"]  # the oldest went
    later = T0 + datetime.timedelta(hours=23)
    step = poll(listing(("o/gone", t(4)), ("o/c", t(3))), step.watermark, watch, check, later)
    assert step.waiting == ["o/c"] and step.dropped == [
        ("o/gone", "its repo is gone (deleted, or made private) before it held a loadable model")]
    ready["o/c"] = "c" * 40
    assert poll(listing(("o/c", t(3))), step.watermark, watch, check, later).announced == [("o/c", "c" * 40)]
    del ready["o/c"]
    step = poll(listing(("o/c", t(3))), step.watermark, watch, check, T0 + datetime.timedelta(hours=25))
    assert step.waiting == [] and [m for m, _ in step.dropped] == ["o/c"]
    # created again (a newer time) while it waited: it waits anew, from now
    mark = poll(listing(("o/d", t(5))), step.watermark, watch, check, T0).watermark
    again = poll(listing(("o/d", t(6))), mark, watch, check, T0 + datetime.timedelta(hours=20))
    assert again.new == ["o/d"] and again.watermark["pending"]["o/d"]["since"] == "2026-01-01T20:00:00+00:00"
    assert poll(listing(("o/d", t(6))), again.watermark, watch, check,
                T0 + datetime.timedelta(hours=30)).waiting == ["o/d"]
    # an earlier version's watermark: no `pending`, nothing re-announced
    old = {"models": {"o/x": t(7)}, "cutoff": t(6)}
    assert poll(listing(("o/x", t(7)), ("o/w", t(6))), old, watch, check, T0).new == []


def test_a_listing_full_of_models_created_since_the_previous_poll_is_listed_again(test_hub):
    """`limit: 2` and three models created between two polls: the oldest of them was never
    listed, and never announced. Such a listing is asked again with a larger limit."""
    add(test_hub, "ov/m0")
    store = FakeStateStore()
    watch = {"authors": ["ov"], "endpoint": test_hub.url, "poll_interval": 1, "limit": 2}
    assert announced(make_trigger(watch, store)) == []
    for i in (1, 2, 3):
        add(test_hub, f"ov/m{i}")
    before = listings(test_hub)
    assert [m for m, _ in announced(make_trigger(watch, store))] == ["ov/m1", "ov/m2", "ov/m3"]
    assert listings(test_hub) == before + 2  # the listing of 2, then the larger one
    assert announced(make_trigger(watch, store)) == []  # m3 and m2 listed, m2 seen before
    assert listings(test_hub) == before + 3  # no second listing


def test_a_listing_still_full_after_relisting_is_a_warning(test_hub, monkeypatch):
    from structlog.testing import capture_logs

    from multiplt.hub import watch as watch_module

    monkeypatch.setattr(watch_module, "RELIST_LIMIT", 3)
    add(test_hub, "ov/m0")
    store = FakeStateStore()
    watch = {"authors": ["ov"], "endpoint": test_hub.url, "poll_interval": 1, "limit": 2}
    assert announced(make_trigger(watch, store)) == []
    for i in (1, 2, 3, 4):
        add(test_hub, f"ov/m{i}")
    with capture_logs() as logs:
        assert [m for m, _ in announced(make_trigger(watch, store))] == ["ov/m2", "ov/m3", "ov/m4"]
    assert warnings(logs) == [
        "every one of the 3 model(s) listed for author 'ov' was created since the previous poll: "
        "models created in between may not be announced; raise `limit` or lower `poll_interval`"]



def test_a_private_repo_made_public_is_announced_only_when_created_after_the_baseline(
        test_hub, monkeypatch):
    """A repo the watcher's token cannot see is listed once it is made public, with the time it
    was created: announced when that is after the baseline, like any new model; a model prepared
    privately before the baseline and released later is not (docs/publishing.md)."""
    monkeypatch.delenv("HF_TOKEN", raising=False)  # the watcher sees public repos only
    monkeypatch.setattr("multiplt_airflow.watch_trigger.NewModelTrigger._token", staticmethod(lambda: None))
    add(test_hub, "pv/prepared")
    test_hub.repo("model", "pv/prepared").private = True
    add(test_hub, "pv/public")
    store = FakeStateStore()
    watch = {"authors": ["pv"], "endpoint": test_hub.url, "poll_interval": 1}
    assert announced(make_trigger(watch, store)) == []  # the baseline: pv/public
    commit = add(test_hub, "pv/later")
    test_hub.repo("model", "pv/later").private = True
    assert announced(make_trigger(watch, store)) == []
    test_hub.repo("model", "pv/prepared").private = False  # released: created before the baseline
    test_hub.repo("model", "pv/later").private = False
    assert announced(make_trigger(watch, store)) == [("pv/later", commit)]
