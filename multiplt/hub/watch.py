"""The watch list of the new-model watcher and the Hub model listing it polls.

A watch list (the `multiplt_watch` Airflow Variable, a JSON object):

    {"authors": ["bigcode"], "search": ["starcoder"], "pattern": "starcoder*",
     "endpoint": null, "poll_interval": 600, "limit": 100}

lists the newest `limit` models of each author (and/or search string; with both, each author
with each search string), keeps those whose name matches the shell `pattern` (the part after
`/`, or the whole id when the pattern has a `/`), and yields their ids and creation times,
newest first.

The watermark (what the watcher has seen of one watch list, kept between polls) is
`{"models": {id: createdAt or null}, "cutoff": createdAt}` (and `"untimed_full": true` once
ids without a creation time were dropped): `cutoff` is the newest creation time listed
at the baseline (the first poll). A model is announced when it is created after the baseline:
an id never seen whose creation time is after `cutoff`, or a seen id whose creation time is
newer than the one stored (the repo was deleted and created again). (Not "at or after": the
Hub gives every repo older than 2022-03 the same createdAt, 2022-03-02T23:29:04.000Z.) A model
created at or before `cutoff` is never announced (unless created again, which gives it a newer
time), so `models` keeps only the models created after `cutoff`: the baseline stores none, and
a model created before the baseline that is listed for the first time later (a newer one was
deleted, `limit` was raised) is not announced and not stored. `models` holds at most KEEP ids:
past that the oldest go and `cutoff` rises to the newest creation time among them (a model
created before it that was never listed, e.g. a private repo made public, is then not
announced), so the watermark stays bounded however long the watcher runs. A model the listing
gives no creation time is announced when its id is not in `models` (nothing tells whether it was
created after the baseline: as before); such ids are kept apart from the trimming by time (never
trimmed as the oldest, which announced a trimmed one again at every poll), at most KEEP of
them too: past that the extras go and `untimed_full` is set, after which a model listed without
a creation time is announced no more (a dropped one cannot be told from a new one). A watermark
stored before creation times were kept (a list of ids) is read as before (every id not in it is
announced) once, and stored in the new form; one stored in this form with the models created
before `cutoff` (the earlier watcher kept every id it listed) loses them at the next poll.
"""

from __future__ import annotations

import dataclasses
import datetime
import fnmatch
import hashlib
import json

from multiplt.errors import MultipltError

DEFAULT_POLL = 600.0
MIN_POLL = 1.0
KEEP = 1000  # models a watermark keeps (those created after its cutoff, the newest)


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
    def from_dict(cls, value: dict | None, also=()) -> "WatchList":
        """The watch list of `value` (the Variable's object). A key that is neither a watch-list
        key nor one of `also` (the settings of the runs that share the Variable: the
        multiplt_watch DAG's Params) is refused with the nearest valid key, as is an author that
        is a model id (`org/name`)."""
        value = dict(value or {})
        _known_keys(value, also)
        as_list = lambda v: tuple([v] if isinstance(v, str) else (v or ()))  # noqa: E731
        try:
            watch = cls(authors=as_list(value.get("authors")), search=as_list(value.get("search")),
                         pattern=str(value.get("pattern") or "*"), endpoint=value.get("endpoint") or None,
                         poll_interval=max(MIN_POLL, float(value.get("poll_interval") or DEFAULT_POLL)),
                         limit=int(value.get("limit") or 100),
                         announce_existing=bool(value.get("announce_existing", False)))
        except (TypeError, ValueError) as exc:
            raise MultipltError(f"bad watch list {value}: {exc}") from None
        for author in watch.authors:
            if "/" in str(author):
                raise MultipltError(f"bad watch list: author {author!r} is a model id; an author is "
                                    f"the part before '/' ({str(author).split('/', 1)[0]!r}); "
                                    "to watch one name, use `pattern`")
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


def _known_keys(value: dict, also) -> None:
    import difflib

    names = sorted(WATCH_LIST_KEYS | set(also))
    for key in value:
        if key not in names:
            near = difflib.get_close_matches(str(key), names, n=1)
            hint = f"did you mean {near[0]!r}?" if near else f"its keys: {', '.join(names)}"
            raise MultipltError(f"bad watch list: unknown key {key!r} ({hint})")


@dataclasses.dataclass
class Listing:
    """What one poll listed: the matching `models` as (id, createdAt or None), newest first;
    `empty`, the queries the Hub listed no model for (`author 'x'`, `search 'y'`); `listed`, the
    models listed before the name pattern; the `endpoint` asked."""

    models: list[tuple[str, str | None]]
    empty: list[str]
    listed: int
    endpoint: str


def _created(model) -> str | None:
    created = getattr(model, "created_at", None)
    if created is None:
        return None
    if created.tzinfo is None:
        created = created.replace(tzinfo=datetime.timezone.utc)
    return created.astimezone(datetime.timezone.utc).isoformat(timespec="microseconds")


def list_models(watch: WatchList, token: str | None) -> Listing:
    """The matching models, newest first, from the Hub listing (one request per author x search),
    with their creation times (the listing's `createdAt`)."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=watch.endpoint, token=token or False)
    queries = [(a, s) for a in (watch.authors or (None,)) for s in (watch.search or (None,))]
    found: dict[str, str | None] = {}
    empty, listed = [], 0
    for author, search in queries:
        models = list(api.list_models(author=author, search=search, sort="created_at", limit=watch.limit))
        listed += len(models)
        if not models:
            empty.append(", ".join(f"{what} {value!r}" for what, value in
                                   (("author", author), ("search", search)) if value))
        for model in models:
            if watch.matches(model.id) and model.id not in found:
                found[model.id] = _created(model)
    ordered = sorted(found.items(), key=lambda item: item[1] or "", reverse=True)  # stable
    return Listing(ordered, empty, listed, api.endpoint)


def _time(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _newest(times) -> str | None:
    known = [t for t in times if t]
    return max(known, key=_time) if known else None


def _is_new(model_id: str, created: str | None, models: dict, cutoff: str | None,
            untimed_full: bool = False) -> bool:
    if model_id not in models:  # created after the baseline (or no time to tell: as before,
        if created is None:     # while no id without a time was dropped from the watermark)
            return not untimed_full
        return cutoff is None or _time(created) > _time(cutoff)
    stored = models[model_id]  # seen: new only when created again since
    return created is not None and stored is not None and _time(created) > _time(stored)


def new_models(listed: list[tuple[str, str | None]], seen, announce_existing: bool,
               keep: int | None = None) -> tuple[list[str], dict]:
    """(models to announce, oldest first; the new watermark) of a listing of (id, createdAt),
    newest first. With no watermark yet the listing is the baseline: nothing is announced
    unless `announce_existing`. `seen` may be a watermark of the old form (a list of ids). The
    new watermark keeps at most `keep` (default KEEP) models created after its cutoff and at
    most `keep` without a creation time (bounded)."""
    untimed_full = False
    if seen is None:
        fresh = [m for m, _ in reversed(listed)] if announce_existing else []
        models, cutoff = dict(listed), _newest(t for _, t in listed)
    elif isinstance(seen, list):  # stored before creation times were kept: as before, then upgraded
        known = set(seen)
        fresh = [m for m, _ in reversed(listed) if m not in known]
        # the ids not listed now are older than this listing (or deleted): under its cutoff
        models, cutoff = dict(listed), _newest(t for _, t in listed)
    else:
        models, cutoff = dict(seen.get("models") or {}), seen.get("cutoff")
        untimed_full = bool(seen.get("untimed_full"))
        fresh = []
        for model_id, created in reversed(listed):
            if _is_new(model_id, created, models, cutoff, untimed_full):
                fresh.append(model_id)
            if created is not None or model_id not in models:
                models[model_id] = created
    models, cutoff, untimed_full = bounded(models, cutoff, KEEP if keep is None else keep,
                                           untimed_full)
    watermark = {"models": dict(sorted(models.items())), "cutoff": cutoff}
    if untimed_full:
        watermark["untimed_full"] = True
    return fresh, watermark


def bounded(models: dict, cutoff: str | None, keep: int, untimed_full: bool = False
            ) -> tuple[dict, str | None, bool]:
    """(models, cutoff, untimed_full) holding only what decides an announcement: the models
    created after `cutoff` (one created at or before it is never new: _is_new), at most `keep`
    of them, the newest, `cutoff` rising to the newest creation time of those left out; and the
    models without a creation time (a listing that gave none), which no cutoff can judge, apart:
    at most `keep` of them, and `untimed_full` once any was left out (then no model listed
    without a time is new, so none of those left out is announced again)."""
    def after(created: str) -> bool:
        return cutoff is None or _time(created) > _time(cutoff)

    timed = {m: t for m, t in models.items() if t is not None and after(t)}
    if len(timed) > keep:
        order = sorted(timed.items(), key=lambda item: _time(item[1]), reverse=True)
        cutoff = _newest([cutoff, *(t for _, t in order[keep:])])
        timed = {m: t for m, t in order[:keep] if after(t)}  # a tie with the new cutoff goes too
    untimed = sorted(m for m, t in models.items() if t is None)
    if len(untimed) > keep:
        untimed, untimed_full = untimed[:keep], True
    return {**timed, **dict.fromkeys(untimed)}, cutoff, untimed_full
