"""The new-base-model watcher: a BaseEventTrigger the triggerer runs for the `multiplt_watch`
DAG's Asset (lives in plugins/, outside the DAG bundle, as event triggers must).

Every `poll_interval` seconds it reads the watch list (the Airflow Variable named by
`variable`, a JSON object; see multiplt.hub.watch), lists the matching Hub models, and yields
one TriggerEvent({"model_id": ...}) per model it has not seen. What it has seen is kept in the
triggerer's asset state store under a key per watch list, written before the events are
yielded, so a restarted triggerer never announces a model twice (at most once: an event lost
in a crash right after the write is not repeated). The first poll of a watch list records the
current models as the baseline and announces none (unless `announce_existing`). A Hub that is
down, or offline mode (HF_HUB_OFFLINE), is logged and retried at the next poll.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncIterator

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

LOG = logging.getLogger(__name__)


class NewModelTrigger(BaseEventTrigger):
    def __init__(self, variable: str = "multiplt_watch", watch: dict | None = None,
                 poll_interval: float | None = None):
        super().__init__()
        self.variable = variable
        self.watch = watch or {}
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("multiplt_airflow.watch_trigger.NewModelTrigger",
                {"variable": self.variable, "watch": self.watch, "poll_interval": self.poll_interval})

    async def _watch_list(self):
        from multiplt.hub.watch import WatchList

        settings = dict(self.watch)
        if self.variable:
            from airflow.sdk import Variable

            value = await asyncio.to_thread(Variable.get, self.variable, None, True)
            if isinstance(value, dict):
                settings.update(value)
        if self.poll_interval is not None and "poll_interval" not in settings:
            settings["poll_interval"] = self.poll_interval
        return WatchList.from_dict(settings)

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

    async def poll_once(self) -> tuple[list[str], float]:
        """(models to announce, seconds until the next poll); the watermark is already saved."""
        from multiplt.hub.watch import DEFAULT_POLL, list_models, new_models

        try:
            watch = await self._watch_list()
        except Exception as exc:  # noqa: BLE001 - a bad Variable must not kill the watcher
            self.log.error("watch list unusable: %s", exc)
            return [], self.poll_interval or DEFAULT_POLL
        if watch.empty:
            self.log.info("nothing to watch: set authors and/or search in the %s Variable", self.variable)
            return [], watch.poll_interval
        try:
            token = await asyncio.to_thread(self._token)
            listed = await asyncio.to_thread(list_models, watch, token)
        except Exception as exc:  # noqa: BLE001 - Hub down, offline mode: try again later
            self.log.warning("listing models failed (%s: %s); next poll in %.0fs",
                             type(exc).__name__, str(exc).splitlines()[0][:300], watch.poll_interval)
            return [], watch.poll_interval
        seen = await self._state(watch.key())
        fresh, watermark = new_models(listed, seen, watch.announce_existing)
        if seen is None or fresh:
            await self._state(watch.key(), watermark, write=True)
        if seen is None:
            self.log.info("baseline of %s: %d matching model(s)", watch.key(), len(listed))
        self.log.info("polled %d matching model(s), %d new: %s", len(listed), len(fresh), fresh)
        return fresh, watch.poll_interval

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            fresh, wait = await self.poll_once()
            for model_id in fresh:
                yield TriggerEvent({"model_id": model_id})
            await asyncio.sleep(wait)
