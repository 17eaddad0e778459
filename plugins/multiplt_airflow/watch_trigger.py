"""The new-base-model watcher: a BaseEventTrigger the triggerer runs for the `multiplt_watch`
DAG's Asset (lives in plugins/, outside the DAG bundle, as event triggers must).

Every `poll_interval` seconds it reads the watch list (the Airflow Variable named by
`variable`, a JSON object; see multiplt.hub.watch), lists the matching Hub models, and yields
one TriggerEvent({"model_id": ..., "revision": commit}) per model created since the first poll
(the baseline) that it has not seen (multiplt.hub.watch.new_models), once the model's default
branch holds config.json and weights (a repo is created before its upload): a new model waits
in the watermark, checked at every poll (one `model_info` request each), and is announced with
the commit it then holds; one still without weights `pending_hours` after it was listed, or
whose repo is gone, is dropped with a warning (multiplt.hub.watch.poll). Its watermark (the
baseline's cutoff time and, bounded, the models created after it, those waiting for weights,
the newest creation time of each query) is kept in the triggerer's asset state store under a
key per watch list, written before the events are yielded, so a restarted triggerer never
announces a model twice (at most once: an event lost in a crash right after the write is not
repeated). The first poll of a watch list records the
current models as the baseline and announces none (unless `announce_existing`). A Hub that is
down, or offline mode (HF_HUB_OFFLINE), is logged and retried at the next poll. A query that
lists no model (a misspelled author), or a listing none of whose models matches `pattern`, is a
warning, logged when it starts (not at every poll). A listing of `limit` models all created
since the previous poll (more may have been created in between) is listed again with
RELIST_LIMIT, and a warning when even that is all new. A key of the Variable that is neither a
watch-list key nor one of `params` (the Params of the DAG that shares the Variable), or a value
of the wrong type or range (`"announce_existing": "false"`, `"limit": 0`), makes the
watch list unusable: an error naming the problem, logged once per problem (again when the
Variable or the problem changes, or after the list was usable), and every poll lists nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncIterator

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

LOG = logging.getLogger(__name__)


class NewModelTrigger(BaseEventTrigger):
    def __init__(self, variable: str = "multiplt_watch", watch: dict | None = None,
                 poll_interval: float | None = None, params: list[str] | None = None):
        super().__init__()
        self.variable = variable
        self.watch = watch or {}
        self.poll_interval = poll_interval
        self.params = list(params or [])  # other keys the Variable may hold (the DAG's Params)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("multiplt_airflow.watch_trigger.NewModelTrigger",
                {"variable": self.variable, "watch": self.watch, "poll_interval": self.poll_interval,
                 "params": self.params})

    async def _settings(self) -> dict:
        """The watch list's settings: `watch`, updated by the Variable's object."""
        settings = dict(self.watch)
        if self.variable:
            from airflow.sdk import Variable

            value = await asyncio.to_thread(Variable.get, self.variable, None, True)
            if isinstance(value, dict):
                settings.update(value)
        if self.poll_interval is not None and "poll_interval" not in settings:
            settings["poll_interval"] = self.poll_interval
        return settings

    async def _watch_list(self):
        """The WatchList of this poll; an unusable one is logged (unusable) and None returned."""
        import json

        from multiplt.hub.watch import WatchList

        settings = None
        try:
            settings = await self._settings()
            watch = WatchList.from_dict(settings, also=self.params)
        except Exception as exc:  # noqa: BLE001 - a bad Variable must not kill the watcher
            self._unusable(json.dumps(settings, sort_keys=True, default=str), exc)
            return None
        self._reported = None  # usable: a later problem is logged again
        return watch

    def _unusable(self, settings: str, exc: Exception) -> None:
        """An error for a watch list that cannot be used, logged once per problem and list: not
        again at every poll until the list (the Variable) or the problem changes (the triggerer's
        log would otherwise repeat it every poll_interval)."""
        state = (settings, f"{type(exc).__name__}: {exc}")
        if state == getattr(self, "_reported", None):
            self.log.debug("watch list still unusable: %s", exc)
            return
        where = f"the {self.variable} Variable" if self.variable else "the watch list"
        self.log.error("watch list unusable: %s; nothing is listed until %s is fixed (logged "
                       "once)", exc, where)
        self._reported = state

    async def _state(self, key: str, value=None, write: bool = False):
        store = getattr(self, "asset_state_store", None)
        if store is None:  # not run by the triggerer for a watched asset (a test): in memory
            self._memory = getattr(self, "_memory", {})
            if write:
                self._memory[key] = value
            return self._memory.get(key)
        if write:
            await store.aset(key, value)
            return value
        return await store.aget(key, default=None)

    @staticmethod
    def _token() -> str | None:
        import os

        from multiplt_airflow.credentials import hub_token_from_connection

        return os.environ.get("HF_TOKEN") or hub_token_from_connection()

    async def poll_once(self) -> tuple[list[tuple[str, str]], float]:
        """((model, commit) of the models to announce, seconds until the next poll); the
        watermark is already saved."""
        import datetime

        from multiplt.hub.watch import DEFAULT_POLL, hub_api, list_models, loadable_commit, poll

        watch = await self._watch_list()
        if watch is None:
            return [], self.poll_interval or DEFAULT_POLL
        if watch.empty:
            self.log.info("nothing to watch: set authors and/or search in the %s Variable", self.variable)
            return [], watch.poll_interval
        seen = await self._state(watch.key())
        previous = seen.get("newest") if isinstance(seen, dict) else None
        try:
            token = await asyncio.to_thread(self._token)
            listing = await asyncio.to_thread(list_models, watch, token, previous)
        except Exception as exc:  # noqa: BLE001 - Hub down, offline mode: try again later
            self.log.warning("listing models failed (%s: %s); next poll in %.0fs",
                             type(exc).__name__, str(exc).splitlines()[0][:300], watch.poll_interval)
            return [], watch.poll_interval
        self._warn_when_nothing_listed(watch, listing)
        self._warn_when_overflowed(watch, listing)
        api = hub_api(watch, token)
        result = await asyncio.to_thread(poll, listing, seen, watch, lambda m: loadable_commit(api, m),
                                         datetime.datetime.now(datetime.timezone.utc))
        if result.watermark != seen:
            await self._state(watch.key(), result.watermark, write=True)
        if seen is None:
            self.log.info("baseline of %s: %d matching model(s)", watch.key(), len(listing.models))
        self._log_poll(watch, listing, result)
        return result.announced, watch.poll_interval

    def _log_poll(self, watch, listing, result) -> None:
        announced = [f"{model} at {commit}" for model, commit in result.announced]
        self.log.info("polled %d matching model(s), %d new, %d announced: %s", len(listing.models),
                      len(result.new), len(announced), announced)
        waiting = [m for m in result.new if m in result.waiting]
        if waiting:
            self.log.info("new model(s) not announced until their default branch holds config.json "
                          "and weights (checked at every poll, for up to %g h): %s",
                          watch.pending_hours, waiting)
        for model, error in result.failed:
            self.log.warning("checking the files of new model %s failed (%s); checked again at the "
                             "next poll", model, error)
        for model, why in result.dropped:
            self.log.warning("not announcing new model %s: %s", model, why)

    def _warn_when_overflowed(self, watch, listing) -> None:
        """Every model a query listed was created since the previous poll: more models than
        `limit` may have been created in between. Such a query is listed again with a larger
        limit (RELIST_LIMIT); a warning when even that listing is all new."""
        from multiplt.hub.watch import RELIST_LIMIT

        for query in listing.relisted:
            self.log.info("every one of the %d model(s) listed for %s was created since the previous "
                          "poll: listed again with limit %d", watch.limit, query, RELIST_LIMIT)
        for query in listing.overflowed:
            self.log.warning("every one of the %d model(s) listed for %s was created since the "
                             "previous poll: models created in between may not be announced; raise "
                             "`limit` or lower `poll_interval`", max(watch.limit, RELIST_LIMIT), query)

    def _warn_when_nothing_listed(self, watch, listing) -> None:
        """A warning per query the Hub listed no model for (a misspelled author or search), and
        when no listed model matches `pattern`: logged when the set of such findings changes (at
        the first poll, after an edit of the watch list), not at every poll."""
        where = f"the {self.variable} Variable" if self.variable else "the watch list"
        found = [f"no model listed for {query} on {listing.endpoint}: check its spelling in {where}"
                 for query in listing.empty]
        if listing.listed and not listing.models:
            found.append(f"none of the {listing.listed} model(s) listed on {listing.endpoint} "
                         f"matches pattern {watch.pattern!r} (set in {where})")
        state = (watch.key(), tuple(found))
        if state != getattr(self, "_warned", None):
            for line in found:
                self.log.warning("%s", line)
            self._warned = state

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            announced, wait = await self.poll_once()
            for model_id, revision in announced:
                yield TriggerEvent({"model_id": model_id, "revision": revision})
            await asyncio.sleep(wait)
