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
    """The ids the trigger announces at its next poll."""
    return [model for model, _ in announced(trigger)]


def announced(trigger) -> list[tuple[str, str]]:
    """(id, commit) of the models the trigger announces at its next poll."""
    return asyncio.run(trigger.poll_once())[0]


def upload(hub, repo_id: str, files=("config.json", "model.safetensors")) -> str:
    """A commit of `files` to the repo's main, as an upload does (after its creation); its id."""
    with hub.lock:
        repo = hub.repo("model", repo_id)
        head = repo.commits[repo.branches["main"]]
        commit = repo.commit(head.oid, {**head.files, **{f: (b"{}", False) for f in files}}, "upload")
        repo.branches["main"] = commit.oid
    return commit.oid


def add(hub, repo_id: str) -> str:
    """A model repo created with its weights, as push_to_hub leaves it; its commit."""
    hub.add_model(repo_id)
    return upload(hub, repo_id)


def created(hub, repo_id: str) -> str:
    """The repo's createdAt as the watermark stores it (multiplt.hub.watch._created)."""
    return hub.repo("model", repo_id).created.replace("Z", "000+00:00")


def test_watch_list_matching_and_watermark():
    watch = WatchList.from_dict({"authors": "bigcode", "pattern": "starcoder*"})
    assert watch.authors == ("bigcode",) and watch.matches("bigcode/starcoder2-3b")
    assert not watch.matches("bigcode/santacoder") and not watch.matches("x/notstarcoder")
    assert WatchList.from_dict({"authors": ["a"], "pattern": "a/*"}).matches("a/x")
    assert WatchList.from_dict({}).empty
    assert watch.key() != WatchList.from_dict({"authors": "bigcode", "pattern": "*"}).key()
    t1, t2, t3 = (f"2024-01-0{d}T00:00:00.000000+00:00" for d in (1, 2, 3))
    baseline = {"models": {}, "cutoff": t2}  # the baseline's models are at or before its cutoff
    assert new_models([("b", t2), ("a", t1)], None, False) == ([], baseline)
    assert new_models([("b", t2), ("a", t1)], None, True) == (["a", "b"], baseline)
    assert new_models([("c", t3), ("b", t2), ("a", t1)], baseline, False) == (
        ["c"], {"models": {"c": t3}, "cutoff": t2})
    assert new_models([("c", t3), ("b", t2), ("a", t1)], {"models": {"c": t3}, "cutoff": t2},
                      False)[0] == []
    # the Hub gives every repo older than 2022-03 one createdAt: one of them listed later is old
    migrated = "2022-03-02T23:29:04.000Z"
    _, watermark = new_models([("old-1", migrated)], None, False)
    assert new_models([("old-2", migrated), ("old-1", migrated)], watermark, False)[0] == []


def test_one_event_per_new_model_and_restart_never_reannounces(test_hub):
    add(test_hub, "bigcode/starcoder-old")
    add(test_hub, "bigcode/santacoder")
    store = FakeStateStore()
    watch = {"authors": ["bigcode"], "pattern": "starcoder*", "endpoint": test_hub.url, "poll_interval": 1}
    trigger = make_trigger(watch, store)
    assert poll(trigger) == []  # the baseline
    (baseline,) = store.values.values()
    assert baseline["models"] == {}  # starcoder-old is at the cutoff: never new, not kept
    assert baseline["cutoff"] == created(test_hub, "bigcode/starcoder-old")
    add(test_hub, "bigcode/starcoder-new")
    add(test_hub, "bigcode/santacoder-2")  # does not match
    add(test_hub, "other/starcoder-fork")  # another author
    assert poll(trigger) == ["bigcode/starcoder-new"]
    assert poll(trigger) == []
    restarted = make_trigger(watch, store)  # a new triggerer process, same asset state
    assert poll(restarted) == []
    add(test_hub, "bigcode/starcoder-newer")
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

    add(test_hub, "ns/m1")
    trigger = make_trigger({"authors": ["ns"], "endpoint": test_hub.url, "poll_interval": 1,
                            "announce_existing": True})
    commit = test_hub.repo("model", "ns/m1").branches["main"]
    assert asyncio.run(asyncio.wait_for(first_events(trigger, 1), 30)) == [
        {"model_id": "ns/m1", "revision": commit}]


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
    assert kwargs["params"] == []
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


def test_only_models_created_after_the_baseline_are_announced(test_hub):
    """An older model that slides into the newest-`limit` window (a newer one was deleted, or
    `limit` was raised: the same watch list) was announced as new, and started an evaluation and
    a fine-tune of an old model; a repo deleted and created again under its id was never
    announced again. Older ids are now added silently; a re-created repo is new."""
    from huggingface_hub import HfApi

    for i in range(5):
        add(test_hub, f"bigcode/starcoder-{i}")
    store = FakeStateStore()
    watch = {"authors": ["bigcode"], "limit": 3, "endpoint": test_hub.url, "poll_interval": 1}
    assert poll(make_trigger(watch, store)) == []  # the baseline: starcoder-4, 3, 2
    (key,) = store.values
    newest = created(test_hub, "bigcode/starcoder-4")  # and the newest the query listed
    assert store.values[key] == {"models": {}, "cutoff": newest, "newest": {"author 'bigcode'": newest}}
    HfApi().delete_repo("bigcode/starcoder-4")
    assert poll(make_trigger(watch, store)) == []  # starcoder-1 slid in: older than the baseline
    assert poll(make_trigger({**watch, "limit": 10}, store)) == []  # starcoder-0 too
    assert store.values[key]["models"] == {}
    add(test_hub, "bigcode/starcoder-5")
    assert poll(make_trigger({**watch, "limit": 10}, store)) == ["bigcode/starcoder-5"]
    HfApi().delete_repo("bigcode/starcoder-3")
    assert poll(make_trigger({**watch, "limit": 10}, store)) == []
    add(test_hub, "bigcode/starcoder-3")  # deleted and created again: a new model
    assert poll(make_trigger({**watch, "limit": 10}, store)) == ["bigcode/starcoder-3"]
    assert poll(make_trigger({**watch, "limit": 10}, store)) == []


def test_a_watermark_stored_without_creation_times_is_read_as_before_then_upgraded(test_hub):
    """Watermarks stored by the earlier watcher are lists of ids: the next poll announces the
    ids not in the list (as before) and stores the new form, from which older ids are quiet."""
    from huggingface_hub import HfApi

    for name in ("m-old", "m-a", "m-b"):
        add(test_hub, f"ns/{name}")
    watch = {"authors": ["ns"], "limit": 2, "endpoint": test_hub.url, "poll_interval": 1}
    store = FakeStateStore()
    store.values[WatchList.from_dict(watch).key()] = ["ns/m-a"]  # the old form
    assert poll(make_trigger(watch, store)) == ["ns/m-b"]
    (value,) = store.values.values()
    newest = created(test_hub, "ns/m-b")
    assert value == {"models": {}, "cutoff": newest, "newest": {"author 'ns'": newest}}
    HfApi().delete_repo("ns/m-b")
    assert poll(make_trigger(watch, store)) == []  # m-old slid in: created before
    assert poll(make_trigger(watch, store)) == []  # and m-a, listed again, stays quiet


def test_a_query_that_lists_nothing_is_a_warning_once(test_hub):
    """A misspelled author gave only INFO lines (`polled 0 matching model(s)`) forever: now a
    warning names the query and the endpoint, at the first poll and when it changes."""
    from structlog.testing import capture_logs

    add(test_hub, "bigcode/starcoder")
    trigger = make_trigger({"authors": ["bigcode", "bigcdoe"], "endpoint": test_hub.url,
                            "poll_interval": 1})
    typo = f"no model listed for author 'bigcdoe' on {test_hub.url}: check its spelling in the watch list"
    with capture_logs() as logs:
        assert poll(trigger) == [] and poll(trigger) == []
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == [typo]
    trigger.watch = {**trigger.watch, "pattern": "santa*"}  # listed models, none matching
    with capture_logs() as logs:
        poll(trigger)
        poll(trigger)
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
        typo, f"none of the 1 model(s) listed on {test_hub.url} matches pattern 'santa*' (set in "
        "the watch list)"]


def test_unknown_keys_and_model_ids_as_authors_are_refused():
    """A misspelled key (`patern`) used to be dropped: the watcher then announced every new model
    of the author. Keys of the DAG's Params (`params`) are allowed."""
    from multiplt.errors import MultipltError

    with pytest.raises(MultipltError, match=r"unknown key 'patern' \(did you mean 'pattern'\?\)"):
        WatchList.from_dict({"authors": ["bigcode"], "patern": "starcoder*"})
    with pytest.raises(MultipltError, match=r"unknown key 'author' \(did you mean 'authors'\?\)"):
        WatchList.from_dict({"author": "bigcode"})
    with pytest.raises(MultipltError, match="unknown key 'finetune_languages'"):
        WatchList.from_dict({"authors": ["x"], "finetune_languages": ["lua"]})
    assert WatchList.from_dict({"authors": ["x"], "finetune_languages": ["lua"]},
                               also=["finetune_languages"]).authors == ("x",)
    with pytest.raises(MultipltError, match="author 'bigcode/starcoder' is a model id; an author "
                       "is the part before '/' \\('bigcode'\\)"):
        WatchList.from_dict({"authors": ["bigcode/starcoder"]})


def test_an_unusable_watch_list_is_an_error_once_per_problem(test_hub):
    """A misspelled key logged the same error at every poll (every poll_interval, for as long as
    nobody fixed the Variable): now once per problem and list, again when either changes or the
    list was fixed and broke again; the watcher keeps polling and never raises."""
    from structlog.testing import capture_logs

    add(test_hub, "bigcode/starcoder")
    good = {"authors": ["bigcode"], "endpoint": test_hub.url, "poll_interval": 1}
    trigger = make_trigger({**good, "patern": "star*"})

    def errors() -> list[str]:
        with capture_logs() as logs:
            assert asyncio.run(trigger.poll_once()) == ([], 600)  # the default: none was read
        return [e["event"] for e in logs if e["log_level"] == "error"]

    patern = ("watch list unusable: bad watch list: unknown key 'patern' (did you mean 'pattern'?); "
              "nothing is listed until the watch list is fixed (logged once)")
    assert errors() == [patern]
    assert errors() == [] and errors() == []
    trigger.watch = {**good, "patern": "santa*"}  # another list, the same key: said again
    assert errors() == [patern]
    assert errors() == []
    trigger.watch = {**good, "authors": ["bigcode/starcoder"]}  # another problem
    assert errors() == ["watch list unusable: bad watch list: author 'bigcode/starcoder' is a model "
                        "id; an author is the part before '/' ('bigcode'); to watch one name, use "
                        "`pattern`; nothing is listed until the watch list is fixed (logged once)"]
    trigger.watch = good
    with capture_logs() as logs:
        assert asyncio.run(trigger.poll_once()) == ([], 1)  # the baseline
    assert not [e for e in logs if e["log_level"] == "error"]
    trigger.watch = {**good, "patern": "star*"}  # broken again after it was fixed: said again
    assert errors() == [patern]


def test_the_watermark_stays_bounded():
    """The watermark kept every id ever listed (the baseline's `limit` x queries, every slid-in
    old model, every announced one): it grew for as long as the watcher ran. Now it keeps the
    models created after its cutoff, at most `keep`, the cutoff rising past those left out;
    none of them is announced again, a re-created one (a newer time) is."""
    times = [f"2024-01-01T00:00:{s:02d}.000000+00:00" for s in range(20)]
    listing = [(f"m{i}", times[i]) for i in range(3)][::-1]
    fresh, mark = new_models(listing, None, False, keep=3)
    assert (fresh, mark) == ([], {"models": {}, "cutoff": times[2]})
    for i in range(3, 12):  # one new model a poll; the listing shows the newest 5
        listing = [(f"m{j}", times[j]) for j in range(i + 1)][::-1][:5]
        fresh, mark = new_models(listing, mark, False, keep=3)
        assert fresh == [f"m{i}"]
        assert len(mark["models"]) <= 3 and f"m{i}" in mark["models"]
    assert mark == {"models": {"m9": times[9], "m10": times[10], "m11": times[11]}, "cutoff": times[8]}
    # every model listed again (limit raised): none is new, the watermark does not grow
    everything = [(f"m{j}", times[j]) for j in range(12)][::-1]
    assert new_models(everything, mark, False, keep=3) == ([], mark)
    # m5, left out of the watermark, is deleted and created again: a newer time, announced
    again = [("m5", times[12]), *[(m, t) for m, t in everything if m != "m5"]]
    fresh, mark = new_models(again, mark, False, keep=3)
    assert fresh == ["m5"] and mark["models"] == {"m5": times[12], "m10": times[10], "m11": times[11]}
    assert mark["cutoff"] == times[9]


def test_a_watermark_of_the_earlier_form_is_read_and_trimmed(test_hub, monkeypatch):
    """A watermark as the earlier watcher stored it (every id it listed, the baseline's too)
    reads as before: nothing it holds is announced again, a new model is; the next write keeps
    only the models created after the cutoff, and from then on at most KEEP."""
    from multiplt.hub import watch as watch_module

    for name in ("a", "b", "c"):
        add(test_hub, f"ns/{name}")
    watch = {"authors": ["ns"], "endpoint": test_hub.url, "poll_interval": 1}
    key = WatchList.from_dict(watch).key()
    store = FakeStateStore()
    times = {m: created(test_hub, f"ns/{m}") for m in "abc"}
    # the baseline listed a and b; c was announced later
    store.values[key] = {"models": {f"ns/{m}": times[m] for m in "abc"}, "cutoff": times["b"]}
    assert poll(make_trigger(watch, store)) == []
    assert store.values[key] == {"models": {"ns/c": times["c"]}, "cutoff": times["b"],
                                 "newest": {"author 'ns'": times["c"]}}
    monkeypatch.setattr(watch_module, "KEEP", 2)
    for name in ("d", "e", "f"):
        add(test_hub, f"ns/{name}")
        assert poll(make_trigger(watch, store)) == [f"ns/{name}"]
        assert poll(make_trigger(watch, store)) == []
    assert store.values[key] == {"models": {"ns/e": created(test_hub, "ns/e"),
                                            "ns/f": created(test_hub, "ns/f")},
                                 "cutoff": created(test_hub, "ns/d"),
                                 "newest": {"author 'ns'": created(test_hub, "ns/f")}}


def test_a_model_listed_without_a_creation_time_is_announced_once():
    """A listing that gives a model no createdAt: the watermark trimmed such ids first (as the
    oldest) and then read the trimmed id as new, announcing it again at every poll. They are kept
    apart, at most `keep`; past that a model listed without a time is announced no more."""
    t = lambda day: f"2026-01-{day:02d}T00:00:00.000000+00:00"  # noqa: E731
    listing = [("o/a", t(3)), ("o/b", t(2)), ("o/c", None)]
    fresh, mark = new_models(listing, None, False, keep=2)
    assert fresh == [] and mark == {"models": {"o/c": None}, "cutoff": t(3)}
    listing = [("o/d", t(5)), ("o/e", t(4)), *listing]
    fresh, mark = new_models(listing, mark, False, keep=2)
    assert fresh == ["o/e", "o/d"]
    for _ in range(3):  # two models created after the cutoff fill `keep`: o/c stays, not new
        fresh, mark = new_models(listing, mark, False, keep=2)
        assert fresh == [] and mark["models"]["o/c"] is None
    # a new model without a time is announced (once) while the watermark has room for it
    fresh, mark = new_models([("o/f", None), *listing], mark, False, keep=2)
    assert fresh == ["o/f"]
    assert new_models([("o/f", None), *listing], mark, False, keep=2)[0] == []
    # a third one: one of them is dropped, and none listed without a time is announced again
    listing = [("o/g", None), ("o/f", None), *listing]
    fresh, mark = new_models(listing, mark, False, keep=2)
    assert fresh == ["o/g"] and mark["untimed_full"] is True
    assert sorted(m for m, created in mark["models"].items() if created is None) == ["o/c", "o/f"]
    for _ in range(2):
        fresh, mark = new_models(listing, mark, False, keep=2)
        assert fresh == []
    assert new_models([("o/h", None), *listing], mark, False, keep=2)[0] == []
    assert new_models([("o/i", t(6)), *listing], mark, False, keep=2)[0] == ["o/i"]
