"""The watch list of the new-model watcher and the Hub model listing it polls.

A watch list (the `multiplt_watch` Airflow Variable, a JSON object):

    {"authors": ["bigcode"], "search": ["starcoder"], "pattern": "starcoder*",
     "endpoint": null, "poll_interval": 600, "limit": 100}

lists the newest `limit` models of each author (and/or search string; with both, each author
with each search string), keeps those whose name matches the shell `pattern` (the part after
`/`, or the whole id when the pattern has a `/`), and yields their ids, newest first.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json

from multiplt.errors import MultipltError

DEFAULT_POLL = 600.0
MIN_POLL = 1.0


@dataclasses.dataclass(frozen=True)
class WatchList:
    authors: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    pattern: str = "*"
    endpoint: str | None = None
    poll_interval: float = DEFAULT_POLL
    limit: int = 100
    announce_existing: bool = False  # first poll: announce what is listed (else it is the baseline)

    @classmethod
    def from_dict(cls, value: dict | None) -> "WatchList":
        value = dict(value or {})
        as_list = lambda v: tuple([v] if isinstance(v, str) else (v or ()))  # noqa: E731
        try:
            watch = cls(authors=as_list(value.get("authors")), search=as_list(value.get("search")),
                         pattern=str(value.get("pattern") or "*"), endpoint=value.get("endpoint") or None,
                         poll_interval=max(MIN_POLL, float(value.get("poll_interval") or DEFAULT_POLL)),
                         limit=int(value.get("limit") or 100),
                         announce_existing=bool(value.get("announce_existing", False)))
        except (TypeError, ValueError) as exc:
            raise MultipltError(f"bad watch list {value}: {exc}") from None
        return watch

    @property
    def empty(self) -> bool:
        return not self.authors and not self.search

    def key(self) -> str:
        """Names this watch list's watermark: another list starts from its own baseline."""
        ident = json.dumps([sorted(self.authors), sorted(self.search), self.pattern, self.endpoint])
        return "seen:" + hashlib.sha256(ident.encode()).hexdigest()[:16]

    def matches(self, model_id: str) -> bool:
        target = model_id if "/" in self.pattern else model_id.split("/", 1)[-1]
        return fnmatch.fnmatchcase(target.lower(), self.pattern.lower())


WATCH_LIST_KEYS = frozenset(field.name for field in dataclasses.fields(WatchList))


def list_models(watch: WatchList, token: str | None) -> list[str]:
    """Matching model ids, newest first, from the Hub listing (one request per author x search)."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=watch.endpoint, token=token or False)
    queries = [(a, s) for a in (watch.authors or (None,)) for s in (watch.search or (None,))]
    found: list[str] = []
    for author, search in queries:
        for model in api.list_models(author=author, search=search, sort="created_at", limit=watch.limit):
            if watch.matches(model.id) and model.id not in found:
                found.append(model.id)
    return found


def new_models(listed: list[str], seen: list[str] | None, announce_existing: bool) -> tuple[list[str], list[str]]:
    """(models to announce, the new watermark). With no watermark yet the listing is the
    baseline: nothing is announced unless `announce_existing`."""
    if seen is None:
        return (list(reversed(listed)) if announce_existing else []), sorted(listed)
    known = set(seen)
    fresh = [m for m in reversed(listed) if m not in known]  # oldest first
    return fresh, sorted(known | set(listed))
