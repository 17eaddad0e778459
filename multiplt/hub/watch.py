"""The watch list of the new-model watcher and the Hub model listing it polls.

A watch list (the `multiplt_watch` Airflow Variable, a JSON object):

    {"authors": ["bigcode"], "search": ["starcoder"], "pattern": "starcoder*",
     "endpoint": null, "poll_interval": 600, "limit": 100, "announce_existing": false,
     "pending_hours": 72}

lists the newest `limit` models of each author (and/or search string; with both, each author
with each search string), keeps those whose name matches the shell `pattern` (the part after
`/`, or the whole id when the pattern has a `/`), and yields their ids and creation times,
newest first. A value of the wrong type or range is refused (WatchList.from_dict).

The watermark (what the watcher has seen of one watch list, kept between polls) is
`{"models": {id: createdAt or null}, "cutoff": createdAt}` (and `"untimed_full": true` once
ids without a creation time were dropped; `"pending"`, the new models waiting for their
weights, and `"newest"`, the newest creation time each query listed: see `poll`): `cutoff` is
the newest creation time listed at the baseline (the first poll). A model is new when it is
created after the baseline:
an id never seen whose creation time is after `cutoff`, or a seen id whose creation time is
newer than the one stored (the repo was deleted and created again). (Not "at or after": the
Hub gives every repo older than 2022-03 the same createdAt, 2022-03-02T23:29:04.000Z.) A model
created at or before `cutoff` is never new (unless created again, which gives it a newer
time), so `models` keeps only the models created after `cutoff`: the baseline stores none, and
a model created before the baseline that is listed for the first time later (a newer one was
deleted, `limit` was raised, a private repo was made public) is not announced and not stored.
`models` holds at most KEEP ids:
past that the oldest go and `cutoff` rises to the newest creation time among them (a model
created before it that was never listed, e.g. a private repo made public, is then not
announced), so the watermark stays bounded however long the watcher runs. A model the listing
gives no creation time is new when its id is not in `models` (nothing tells whether it was
created after the baseline: as before); such ids are kept apart from the trimming by time (never
trimmed as the oldest, which announced a trimmed one again at every poll), at most KEEP of
them too: past that the extras go and `untimed_full` is set, after which a model listed without
a creation time is new no more (a dropped one cannot be told from a new one). A watermark
stored before creation times were kept (a list of ids) is read as before (every id not in it is
new) once, and stored in the new form; one stored in this form with the models created
before `cutoff` (the earlier watcher kept every id it listed) loses them at the next poll. One
stored before `pending` and `newest` were kept has none waiting and no overflow check at its
next poll (nothing it holds is new again).

A new model is announced once its default branch holds a model that loads (`loadable`:
config.json and weights), at the commit it then holds; until then it waits in `pending`, at
most `pending_hours` (see `poll`).
"""

from __future__ import annotations

import dataclasses
import datetime
import fnmatch
import hashlib
import json
import re

from multiplt.errors import MultipltError

DEFAULT_POLL = 600.0
MIN_POLL = 1.0
DEFAULT_LIMIT = 100
PENDING_HOURS = 72.0  # a new repo without config.json and weights on main is dropped after this
PENDING_KEEP = 100  # new repos a watermark keeps waiting for their weights (the newest)
RELIST_LIMIT = 1000  # a listing full of models created since the previous poll is asked again
KEEP = 1000  # models a watermark keeps (those created after its cutoff, the newest)


@dataclasses.dataclass(frozen=True)
class WatchList:
    authors: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    pattern: str = "*"
    endpoint: str | None = None
    poll_interval: float = DEFAULT_POLL
    limit: int = DEFAULT_LIMIT
    announce_existing: bool = False  # first poll: announce what is listed (else it is the baseline)
    pending_hours: float = PENDING_HOURS  # how long a new repo may wait for its weights

    @classmethod
    def from_dict(cls, value: dict | None, also=()) -> "WatchList":
        """The watch list of `value` (the Variable's object). A key that is neither a watch-list
        key nor one of `also` (the settings of the runs that share the Variable: the
        multiplt_watch DAG's Params) is refused with the nearest valid key, as is an author that
        is a model id (`org/name`), and a value of the wrong type or range (`announce_existing`
        a JSON boolean, `limit` an integer of at least 1, `poll_interval` a number of at least
        1, `pending_hours` a number above 0, `authors`/`search` a string or a list of strings,
        `pattern`/`endpoint` a string); null (or a missing key) is the default."""
        value = dict(value or {})
        _known_keys(value, also)
        watch = cls(authors=_strings(value, "authors"), search=_strings(value, "search"),
                    pattern=_string(value, "pattern") or "*", endpoint=_string(value, "endpoint") or None,
                    poll_interval=_number(value, "poll_interval", DEFAULT_POLL, MIN_POLL),
                    limit=_number(value, "limit", DEFAULT_LIMIT, 1, integer=True),
                    announce_existing=_boolean(value, "announce_existing"),
                    pending_hours=_number(value, "pending_hours", PENDING_HOURS, 0, above=True))
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


def _shown(value) -> str:
    return json.dumps(value) if isinstance(value, (str, bool, int, float, list, dict)) or value is None \
        else repr(value)


def _bad(key: str, what: str, value) -> MultipltError:
    return MultipltError(f"bad watch list: `{key}` must be {what}, not {_shown(value)}")


def _strings(value: dict, key: str) -> tuple[str, ...]:
    given = value.get(key)
    if given is None:
        return ()
    items = [given] if isinstance(given, str) else given
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) and i.strip() for i in items):
        raise _bad(key, "a name or a list of names (non-empty strings)", given)
    return tuple(items)


def _string(value: dict, key: str) -> str | None:
    given = value.get(key)
    if given is not None and not isinstance(given, str):
        raise _bad(key, "a string", given)
    return given


def _boolean(value: dict, key: str) -> bool:
    given = value.get(key)
    if given is None:
        return False
    if not isinstance(given, bool):  # bool("false") is True: a string is no answer
        raise _bad(key, "true or false (a JSON boolean, unquoted)", given)
    return given


def _number(value: dict, key: str, default, minimum, integer: bool = False, above: bool = False):
    """`value[key]`, a number (an integer with `integer`) of at least `minimum` (above it with
    `above`), finite; null or missing: `default`. A boolean is no number."""
    import math

    given = value.get(key)
    if given is None:
        return default
    kind = "an integer" if integer else "a number"
    what = f"{kind} {'above' if above else 'of at least'} {minimum:g}"
    numeric = isinstance(given, int) if integer else isinstance(given, (int, float))
    if isinstance(given, bool) or not numeric or not math.isfinite(given) or \
            (given <= minimum if above else given < minimum):
        raise _bad(key, what, given)
    return given if integer else float(given)


@dataclasses.dataclass
class Listing:
    """What one poll listed: the matching `models` as (id, createdAt or None), newest first;
    `empty`, the queries the Hub listed no model for (`author 'x'`, `search 'y'`); `listed`, the
    models listed before the name pattern; the `endpoint` asked; `newest`, the newest creation
    time each query listed (by query label, for the next poll); `relisted`, the queries listed
    again with a larger limit because every model of their listing was created after the newest
    one of the previous poll (more models were created in between than `limit`); `overflowed`,
    those of them whose larger listing was still all new (a model may have been missed)."""

    models: list[tuple[str, str | None]]
    empty: list[str]
    listed: int
    endpoint: str
    newest: dict[str, str] = dataclasses.field(default_factory=dict)
    relisted: list[str] = dataclasses.field(default_factory=list)
    overflowed: list[str] = dataclasses.field(default_factory=list)


def _created(model) -> str | None:
    created = getattr(model, "created_at", None)
    if created is None:
        return None
    if created.tzinfo is None:
        created = created.replace(tzinfo=datetime.timezone.utc)
    return created.astimezone(datetime.timezone.utc).isoformat(timespec="microseconds")


def hub_api(watch: WatchList, token: str | None):
    from huggingface_hub import HfApi

    return HfApi(endpoint=watch.endpoint, token=token or False)


def _query_label(author: str | None, search: str | None) -> str:
    return ", ".join(f"{what} {value!r}" for what, value in (("author", author), ("search", search))
                     if value)


def _all_after(models, previous: str | None) -> bool:
    """Whether every listed model was created after `previous` (the newest creation time the
    same query listed at the previous poll): then models created in between may lie past the
    listing's end. A model without a creation time tells nothing: no."""
    if previous is None or not models:
        return False
    times = [_created(m) for m in models]
    return all(t is not None and _time(t) > _time(previous) for t in times)


def list_models(watch: WatchList, token: str | None, previous: dict | None = None) -> Listing:
    """The matching models, newest first, from the Hub listing (one request per author x search),
    with their creation times (the listing's `createdAt`). `previous`: the newest creation time
    of each query at the previous poll (the watermark's `newest`); a query whose listing is full
    (`limit` models) and all created after it is listed again with up to RELIST_LIMIT models
    (once), and named in `overflowed` when that listing is all new too."""
    api = hub_api(watch, token)
    previous = previous if isinstance(previous, dict) else {}
    queries = [(a, s) for a in (watch.authors or (None,)) for s in (watch.search or (None,))]
    found: dict[str, str | None] = {}
    empty, listed, newest, relisted, overflowed = [], 0, {}, [], []
    for author, search in queries:
        label = _query_label(author, search)
        ask = lambda limit: list(api.list_models(author=author, search=search,  # noqa: E731
                                                 sort="created_at", limit=limit))
        models = ask(watch.limit)
        before = previous.get(label)
        if len(models) >= watch.limit and _all_after(models, before):
            if watch.limit < RELIST_LIMIT:
                relisted.append(label)
                models = ask(RELIST_LIMIT)
            if len(models) >= max(watch.limit, RELIST_LIMIT) and _all_after(models, before):
                overflowed.append(label)
        listed += len(models)
        if not models:
            empty.append(label)
        times = [t for t in (_created(m) for m in models) if t]
        if times:
            newest[label] = max(times, key=_time)
        elif before is not None:
            newest[label] = before
        for model in models:
            if watch.matches(model.id) and model.id not in found:
                found[model.id] = _created(model)
    ordered = sorted(found.items(), key=lambda item: item[1] or "", reverse=True)  # stable
    return Listing(ordered, empty, listed, api.endpoint, newest, relisted, overflowed)


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
    """(models new since `seen`, oldest first; the new watermark, without its `pending` and
    `newest`: see `poll`) of a listing of (id, createdAt), newest first. With no watermark yet
    the listing is the baseline: no model is new unless `announce_existing`. `seen` may be a
    watermark of the old form (a list of ids). The new watermark keeps at most `keep` (default
    KEEP) models created after its cutoff and at most `keep` without a creation time
    (bounded)."""
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


#: weights the generate and train stages load (model_source.HUB_PATTERNS, then `*.bin`)
WEIGHT_SUFFIXES = (".safetensors", ".bin")
#: `.bin` files a Trainer pushes beside the weights that are no weights
NOT_WEIGHTS = frozenset({"training_args.bin", "optimizer.bin", "scheduler.bin", "rng_state.bin"})
_SHARD = re.compile(r"^(?P<stem>.+)-(?P<index>\d+)-of-(?P<total>\d+)\.(?P<ext>safetensors|bin)$")


def loadable(files) -> bool:
    """Whether a repo's files (paths) hold a model the stages load: `config.json` and weights (a
    `.safetensors` or `.bin` file, not a Trainer's `training_args.bin` and the like) at the top,
    and every shard of a sharded checkpoint (`model-00001-of-00003.safetensors` ... `00003`).
    A repo just created (`.gitattributes` only), or one whose upload is under way, is not."""
    top = {f for f in files if "/" not in f}
    weights = [f for f in top if f.endswith(WEIGHT_SUFFIXES) and f not in NOT_WEIGHTS]
    if "config.json" not in top or not weights:
        return False
    shards: dict[tuple, set[int]] = {}
    for name in weights:
        match = _SHARD.match(name)
        if match:
            shards.setdefault((match["stem"], match["total"], match["ext"]), set()).add(int(match["index"]))
    return all(have >= set(range(1, int(total) + 1)) for (_, total, _), have in shards.items())


class RepoGone(Exception):
    """A listed repo that is no longer there (deleted, or made private)."""


def loadable_commit(api, model_id: str) -> str | None:
    """The commit the default branch of `model_id` is at when it holds a loadable model
    (`loadable`), else None; one `model_info` request (its file list and commit come in one
    answer). RepoGone when the repo is not found; other errors (the Hub down) pass."""
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        info = api.model_info(model_id)
    except RepositoryNotFoundError:
        raise RepoGone(model_id) from None
    files = [sibling.rfilename for sibling in info.siblings or []]
    return info.sha if info.sha and loadable(files) else None


@dataclasses.dataclass
class Poll:
    """What one poll decided: `announced`, (id, commit) of the models to announce now, oldest
    first, each at the commit its default branch held a loadable model at; `new`, the models new
    at this poll (announced, or left `waiting`); `waiting`, the models that wait for their
    weights after it; `dropped`, (id, why) of those no longer waited for; `failed`, (id, error)
    of those whose check failed (still waiting); the `watermark` to store."""

    announced: list[tuple[str, str]]
    new: list[str]
    waiting: list[str]
    dropped: list[tuple[str, str]]
    failed: list[tuple[str, str]]
    watermark: dict


def poll(listing: Listing, seen, watch: WatchList, check, now: datetime.datetime,
         keep: int | None = None, keep_pending: int | None = None) -> Poll:
    """One poll of `listing` against the watermark `seen` (None: this is the baseline). The
    models new since `seen` (new_models) are not announced at once: a repo is created before its
    weights are uploaded (push_to_hub creates it, then commits), and a run started on an empty
    repo fails for good. Each waits in the watermark's `pending` ({id: {"created": createdAt,
    "since": when it was first listed}}) and is checked at this and every later poll with
    `check(id)` (loadable_commit: the commit, None while not loadable; raising RepoGone when
    the repo is gone, anything else: a failed check, tried again next poll); it is announced, at
    that commit, once loadable. One not loadable `watch.pending_hours` after it was listed, or
    gone, is dropped (Poll.dropped, not announced); so is the oldest past `keep_pending`
    (PENDING_KEEP) waiting ones. `now` is an aware datetime. A re-created repo (new_models: a
    newer creation time) waits anew. The watermark also keeps the listing's `newest` (per query,
    for list_models' overflow check). A watermark without `pending` (an earlier version's, or
    one of ids only) has none waiting."""
    fresh, watermark = new_models(listing.models, seen, watch.announce_existing, keep)
    pending = dict(seen.get("pending") or {}) if isinstance(seen, dict) else {}
    created = dict(listing.models)
    stamp = now.astimezone(datetime.timezone.utc).isoformat(timespec="seconds")
    for model_id in fresh:
        pending.pop(model_id, None)  # created again while waiting: waits anew
        pending[model_id] = {"created": created.get(model_id), "since": stamp}
    announced, dropped, failed, waiting = [], [], [], {}
    most = datetime.timedelta(hours=watch.pending_hours)
    for model_id, entry in sorted(pending.items(), key=_waited):
        entry = entry if isinstance(entry, dict) and entry.get("since") else {"since": stamp}
        try:
            commit = check(model_id)
        except RepoGone:
            dropped.append((model_id, "its repo is gone (deleted, or made private) before it held "
                                      "a loadable model"))
            continue
        except Exception as exc:  # noqa: BLE001 - the Hub failing now: checked again next poll
            commit = None
            first = (str(exc).splitlines() or [""])[0][:300]
            failed.append((model_id, f"{type(exc).__name__}: {first}"))
        if commit:
            announced.append((model_id, commit))
        elif now - _time(entry["since"]) > most:
            dropped.append((model_id, f"no config.json and weights on its default branch "
                                      f"{watch.pending_hours:g} h after it was listed"))
        else:
            waiting[model_id] = entry
    keep_pending = PENDING_KEEP if keep_pending is None else keep_pending
    if len(waiting) > keep_pending:
        order = sorted(waiting.items(), key=_waited)
        for model_id, _ in order[:len(order) - keep_pending]:
            dropped.append((model_id, f"more than {keep_pending} new models wait for their "
                                      "weights: the oldest are no longer waited for"))
            del waiting[model_id]
    if waiting:
        watermark["pending"] = dict(sorted(waiting.items(), key=_waited))
    if listing.newest:
        watermark["newest"] = dict(sorted(listing.newest.items()))
    return Poll(announced, fresh, list(waiting), dropped, failed, watermark)


def _waited(item) -> tuple:
    model_id, entry = item
    entry = entry if isinstance(entry, dict) else {}
    return (str(entry.get("since") or ""), str(entry.get("created") or ""), model_id)
