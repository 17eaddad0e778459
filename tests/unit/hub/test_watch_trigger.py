"""The new-model watcher against the test Hub: baseline, one event per new model, nothing on
a second poll, the watermark in the asset state store surviving a restart, the name pattern,
a Hub that is down, and the serialized form the triggerer rebuilds it from."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
if str(REPO / "plugins") not in sys.path:
    sys.path.insert(0, str(REPO / "plugins"))

from multiplt.hub.watch import WatchList, new_models  # noqa: E402


class FakeStateStore:
    """The triggerer's asset state store accessor (aget/aset), shared across trigger instances."""

    def __init__(self):
        self.values = {}

    async def aget(self, key, default=None):
        return self.values.get(key, default)

    async def aset(self, key, value):
        self.values[key] = value


def make_trigger(watch: dict, store=None):
    from multiplt_airflow.watch_trigger import NewModelTrigger

    trigger = NewModelTrigger(variable="", watch=watch)
    if store is not None:
        trigger.asset_state_store = store
    return trigger


def poll(trigger) -> list[str]:
    return asyncio.run(trigger.poll_once())[0]


def test_watch_list_matching_and_watermark():
    watch = WatchList.from_dict({"authors": "bigcode", "pattern": "starcoder*"})
    assert watch.authors == ("bigcode",) and watch.matches("bigcode/starcoder2-3b")
    assert not watch.matches("bigcode/santacoder") and not watch.matches("x/notstarcoder")
    assert WatchList.from_dict({"authors": ["a"], "pattern": "a/*"}).matches("a/x")
    assert WatchList.from_dict({}).empty
    assert watch.key() != WatchList.from_dict({"authors": "bigcode", "pattern": "*"}).key()
    assert new_models(["b", "a"], None, False) == ([], ["a", "b"])
    assert new_models(["b", "a"], None, True) == (["a", "b"], ["a", "b"])
    assert new_models(["c", "b", "a"], ["a", "b"], False) == (["c"], ["a", "b", "c"])


def test_one_event_per_new_model_and_restart_never_reannounces(test_hub):
    test_hub.add_model("bigcode/starcoder-old")
    test_hub.add_model("bigcode/santacoder")
    store = FakeStateStore()
    watch = {"authors": ["bigcode"], "pattern": "starcoder*", "endpoint": test_hub.url, "poll_interval": 1}
    trigger = make_trigger(watch, store)
    assert poll(trigger) == []  # the baseline
    assert store.values and list(store.values.values())[0] == ["bigcode/starcoder-old"]
    test_hub.add_model("bigcode/starcoder-new")
    test_hub.add_model("bigcode/santacoder-2")  # does not match
    test_hub.add_model("other/starcoder-fork")  # another author
    assert poll(trigger) == ["bigcode/starcoder-new"]
    assert poll(trigger) == []
    restarted = make_trigger(watch, store)  # a new triggerer process, same asset state
    assert poll(restarted) == []
    test_hub.add_model("bigcode/starcoder-newer")
    assert poll(restarted) == ["bigcode/starcoder-newer"]
    listing = [r for r in test_hub.requests if r[1] == "/api/models"]
    assert len(listing) == 5


def test_run_yields_trigger_events(test_hub):
    async def first_events(trigger, n):
        out = []
        async for ev in trigger.run():
            out.append(ev.payload)
            if len(out) == n:
                return out

    test_hub.add_model("ns/m1")
    trigger = make_trigger({"authors": ["ns"], "endpoint": test_hub.url, "poll_interval": 1,
                            "announce_existing": True})
    assert asyncio.run(asyncio.wait_for(first_events(trigger, 1), 30)) == [{"model_id": "ns/m1"}]


def test_hub_down_and_empty_watch_list_keep_the_watermark(test_hub, monkeypatch):
    import huggingface_hub.utils._http as hf_http

    monkeypatch.setattr(hf_http.time, "sleep", lambda seconds: None)  # the client's own backoff
    store = FakeStateStore()
    watch = {"authors": ["ns"], "endpoint": test_hub.url}
    trigger = make_trigger(watch, store)
    test_hub.fail("GET", r"^/api/models$", 503, times=20)
    assert poll(trigger) == [] and store.values == {}  # no baseline from a failed listing
    test_hub.faults.clear()
    assert poll(trigger) == [] and store.values
    requests, values = len(test_hub.requests), dict(store.values)
    assert poll(make_trigger({}, store)) == []  # nothing to watch: no request, no change
    assert len(test_hub.requests) == requests and store.values == values


def test_serialize_round_trip():
    from multiplt_airflow.watch_trigger import NewModelTrigger

    trigger = NewModelTrigger(variable="multiplt_watch", watch={"authors": ["x"]}, poll_interval=5)
    path, kwargs = trigger.serialize()
    assert path == "multiplt_airflow.watch_trigger.NewModelTrigger"
    module, name = path.rsplit(".", 1)
    rebuilt = getattr(__import__(module, fromlist=[name]), name)(**kwargs)
    assert rebuilt.serialize() == (path, kwargs)
    from airflow.triggers.base import BaseEventTrigger

    assert isinstance(rebuilt, BaseEventTrigger)


@pytest.fixture(autouse=True)
def _fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")


def test_offline_mode_polls_nothing_and_keeps_going(test_hub, monkeypatch):
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    store = FakeStateStore()
    trigger = make_trigger({"authors": ["ns"], "endpoint": test_hub.url, "poll_interval": 7}, store)
    assert asyncio.run(trigger.poll_once()) == ([], 7)
    assert test_hub.requests == [] and store.values == {}
