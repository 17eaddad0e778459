"""The testgen funnel: per shard, `{"steps": [{"name", "in", "out"}, ...]}` (the corpus step's
format) from `input` through each filter of outcome.STEPS, plus assert and verdict counts; over
a run, `OUT/funnel.json` once every shard is done."""

from __future__ import annotations

import collections
import json

from multiplt import storage
from multiplt.testgen import outcome

DONE = "_DONE"


def shard_funnel(n_in: int, reasons: list[str]) -> dict:
    dropped = collections.Counter(reasons)
    steps, current = [], n_in
    steps.append({"name": "input", "in": n_in, "out": n_in})
    for name in outcome.STEPS:
        steps.append({"name": name, "in": current, "out": current - dropped[name]})
        current -= dropped[name]
    return {"steps": steps}


def shard_names(out: str) -> list[str]:
    """The shards OUT holds work folders of (shard-all, or shard-K-of-N names)."""
    work = storage.join(out, "work")
    return sorted(storage.basename(u) for u in storage.ls(work) if u.endswith("/")) if storage.exists(work) else []


def merge(out: str) -> dict | None:
    """Write OUT/funnel.json over every shard once all shards of the run are done: the shards'
    counts added up, and `validate_provenance`, the distinct `provenance` blocks of the
    processes that validated them (in shard order)."""
    work = storage.join(out, "work")
    shards = shard_names(out)
    totals = None
    for name in shards:
        if not storage.exists(storage.join(work, name, DONE)):
            return None
    expected = expected_shards(shards)
    if expected is None or set(expected) != set(shards):
        return None
    first, validated_by = None, []
    for name in shards:
        f = storage.read_json(storage.join(work, name, "funnel.json"))
        made_by = f.pop("provenance", None)
        if made_by is not None and made_by not in validated_by:
            validated_by.append(made_by)
        if totals is None:
            totals, first = json.loads(json.dumps(f)), name
            continue
        # Steps add up by name; shards finished by versions of testgen with other steps (a
        # shard validated before the `flaky` step existed) would add one step's counts to
        # another's: refused, naming both.
        ours, theirs = [s.get("name") for s in totals["steps"]], [s.get("name") for s in f["steps"]]
        if ours != theirs:
            from multiplt.errors import MultipltError

            raise MultipltError(f"{out}: shard {name} was finished by another version of testgen "
                                f"than shard {first} (funnel steps {theirs} against {ours}), so "
                                f"its counts cannot be added up; use a fresh --out")
        for step, other in zip(totals["steps"], f["steps"]):
            step["in"] += other["in"]
            step["out"] += other["out"]
        for key in ("asserts", "verdicts", "types"):
            for k, v in f.get(key, {}).items():
                totals.setdefault(key, {})[k] = totals.get(key, {}).get(k, 0) + v
    if totals is None:
        return None
    totals.pop("execution", None)
    totals["shards"] = len(shards)
    if validated_by:  # shards validated before the validate stage recorded it have none
        totals["validate_provenance"] = validated_by
    # a rerun over finished shards writes nothing
    storage.write_json(storage.join(out, "funnel.json"), totals, indent=1, if_changed=True)
    return totals


def expected_shards(names: list[str]) -> list[str] | None:
    """All shard names of the run the given ones belong to (one N), or None if mixed."""
    if names == ["shard-all"]:
        return names
    totals = {n.rsplit("-of-", 1)[-1] for n in names if "-of-" in n}
    if len(totals) != 1 or len(names) != sum(1 for n in names if "-of-" in n):
        return None
    n = int(totals.pop())
    return [f"shard-{k:05d}-of-{n:05d}" for k in range(n)]
