"""The watch list's values are checked: a wrong type or range makes the list unusable (one
error, nothing listed) instead of a surprising meaning. `"announce_existing": "false"`
announced every listed model (bool("false") is True); `poll_interval: 0` polled every 600 s and
`-5` every second; `limit: 0` listed 100; `limit: -1` failed at every poll as if the Hub were
down."""

from __future__ import annotations

import asyncio

import pytest

from multiplt.errors import MultipltError
from multiplt.hub.watch import WatchList
from tests.unit.hub.test_watch_trigger import FakeStateStore, add, make_trigger


@pytest.mark.parametrize("given, message", [
    ({"announce_existing": "false"}, '`announce_existing` must be true or false (a JSON boolean, '
                                     'unquoted), not "false"'),
    ({"announce_existing": 0}, "`announce_existing` must be true or false (a JSON boolean, "
                               "unquoted), not 0"),
    ({"poll_interval": 0}, "`poll_interval` must be a number of at least 1, not 0"),
    ({"poll_interval": -5}, "`poll_interval` must be a number of at least 1, not -5"),
    ({"poll_interval": 0.5}, "`poll_interval` must be a number of at least 1, not 0.5"),
    ({"poll_interval": "600"}, '`poll_interval` must be a number of at least 1, not "600"'),
    ({"poll_interval": float("inf")}, "`poll_interval` must be a number of at least 1, not Infinity"),
    ({"limit": 0}, "`limit` must be an integer of at least 1, not 0"),
    ({"limit": -1}, "`limit` must be an integer of at least 1, not -1"),
    ({"limit": 2.5}, "`limit` must be an integer of at least 1, not 2.5"),
    ({"limit": True}, "`limit` must be an integer of at least 1, not true"),
    ({"pending_hours": 0}, "`pending_hours` must be a number above 0, not 0"),
    ({"pattern": 5}, "`pattern` must be a string, not 5"),
    ({"endpoint": ["http://hub"]}, '`endpoint` must be a string, not ["http://hub"]'),
    ({"search": [""]}, '`search` must be a name or a list of names (non-empty strings), not [""]'),
    ({"authors": {"a": 1}}, '`authors` must be a name or a list of names (non-empty strings), '
                            'not {"a": 1}'),
    ({"authors": ["a", 3]}, '`authors` must be a name or a list of names (non-empty strings), '
                            'not ["a", 3]'),
])
def test_bad_values_are_refused(given, message):
    with pytest.raises(MultipltError) as refused:
        WatchList.from_dict({"authors": ["bigcode"], **given})
    assert str(refused.value) == "bad watch list: " + message


def test_good_values_and_defaults():
    watch = WatchList.from_dict({"authors": "a", "search": ["s"], "pattern": "x*", "endpoint": "http://h",
                                 "poll_interval": 1, "limit": 1, "announce_existing": True,
                                 "pending_hours": 0.5})
    assert (watch.authors, watch.search, watch.pattern, watch.endpoint) == (
        ("a",), ("s",), "x*", "http://h")
    assert (watch.poll_interval, watch.limit, watch.announce_existing, watch.pending_hours) == (
        1.0, 1, True, 0.5)
    nulls = WatchList.from_dict({"authors": ["a"], "search": None, "pattern": None, "endpoint": None,
                                 "poll_interval": None, "limit": None, "announce_existing": None,
                                 "pending_hours": None})
    assert nulls == WatchList(authors=("a",))
    assert (nulls.poll_interval, nulls.limit, nulls.announce_existing, nulls.pending_hours) == (
        600.0, 100, False, 72.0)


def test_a_quoted_boolean_is_an_error_not_an_announcement(test_hub):
    """The reviewer's reproduction: every listed model announced at the first poll."""
    from structlog.testing import capture_logs

    add(test_hub, "bc/m1")
    store = FakeStateStore()
    trigger = make_trigger({"authors": ["bc"], "endpoint": test_hub.url, "poll_interval": 1,
                            "announce_existing": "false"}, store)
    with capture_logs() as logs:
        assert asyncio.run(trigger.poll_once()) == ([], 600)
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        'watch list unusable: bad watch list: `announce_existing` must be true or false (a JSON '
        'boolean, unquoted), not "false"; nothing is listed until the watch list is fixed (logged once)']
    assert test_hub.requests == [] and store.values == {}


def test_a_negative_limit_is_an_error_not_a_hub_outage(test_hub):
    from structlog.testing import capture_logs

    trigger = make_trigger({"authors": ["bc"], "endpoint": test_hub.url, "limit": -1}, FakeStateStore())
    with capture_logs() as logs:
        asyncio.run(trigger.poll_once())
        asyncio.run(trigger.poll_once())
    assert [(e["log_level"], e["event"].split(";")[0]) for e in logs if e["log_level"] != "debug"] == [
        ("error", "watch list unusable: bad watch list: `limit` must be an integer of at least 1, not -1")]
    assert test_hub.requests == []
