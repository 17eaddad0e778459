"""The input of one build, fixed when it begins: the source's resolved revision (a Hub commit,
the Python version of `stdlib`; none for a folder or table) and its sorted list of input units.

The first shard of a build to start records both as `_work/input.json` under --out, with a
conditional create (`storage.write_bytes_if`: of shards starting at once, one write wins and
the others read it); a one-shard build records it with its parts (`write`). Every shard, and
every rerun, then reads that listing at that revision: `--shard K/N` takes the K-th of N
slices of the recorded list, never of the source's listing now, so a file added to the source
(a new Hub commit, a new file in the folder) while the build runs cannot shift the slices and
leave a file unread. Each shard writes the record's digest into its stats.json; dedup and the
merge refuse shards whose inputs differ.
"""

from __future__ import annotations

import hashlib
import json
import logging

from multiplt import storage
from multiplt.corpus import sources
from multiplt.errors import MultipltError

LOG = logging.getLogger("multiplt.corpus")
NAME = "input.json"


def pin_uri(out: str) -> str:
    return storage.join(out, "_work", NAME)


def digest(pin: dict) -> str:
    """What identifies the input: the source, its revision and its units."""
    data = {key: pin[key] for key in ("source", "revision", "units")}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _read(uri: str) -> dict:
    pin = storage.read_json(uri)
    if not (isinstance(pin, dict) and isinstance(pin.get("source"), str)
            and isinstance(pin.get("units"), list) and "revision" in pin):
        raise MultipltError(f"{uri} is not a build's input record (source, revision, units); "
                            f"use a fresh --out")
    return pin


def _claim(uri: str, pin: dict) -> dict:
    """`pin` written at `uri` unless a record is there already; the record there after."""
    if storage.create(uri, storage.encode_json(uri, pin, indent=1),
                      "shards starting at the same moment may record different inputs (dedup and "
                      "the merge would refuse them)"):
        return pin
    return _read(uri)


def open_input(spec: str, out: str, record: bool = True
               ) -> tuple[sources.FolderSource | sources.TableSource, dict]:
    """The source `spec` as the build under `out` reads it, and the build's input record
    ({source, revision, units, digest}): when `out` holds none yet, made now and (`record`)
    written; without `record`, the caller writes it later (`write`)."""
    uri = pin_uri(out)
    pin = _read(uri) if storage.exists(uri) else None
    source = None
    if pin is None:
        source = sources.resolve(spec)
        units = source.units()
        pin = {"source": spec, "revision": source.revision, "units": units}
        if record:
            pin = _claim(uri, pin)
        fresh = pin["source"] == spec and pin["revision"] == source.revision and pin["units"] == units
    else:
        fresh = False
    if pin["source"] != spec:
        raise MultipltError(f"{out} holds a build of --source {pin['source']}, not {spec} "
                            f"({uri}); use a fresh --out")
    if not fresh:
        source = sources.resolve(spec, pin["revision"])
        if source.revision != pin["revision"]:
            raise MultipltError(f"--source {spec} is at revision {source.revision} now, but the build "
                                f"under {out} began at {pin['revision']} ({uri}); its shards must "
                                f"read one input: use a fresh --out")
        _compare_units(spec, out, uri, pin["units"], source.units())
    return source, {**pin, "digest": digest(pin)}


def write(out: str, pin: dict) -> None:
    """Records `pin` (from `open_input(..., record=False)`) under `out` unless that very record
    is there; another record there (a build begun beside this one) is an error."""
    uri = pin_uri(out)
    there = _claim(uri, {key: pin[key] for key in ("source", "revision", "units")})
    if digest(there) != pin["digest"]:
        raise MultipltError(f"{out}: another build began there while this one ran (it recorded "
                            f"another input in {uri}); use a fresh --out")


def _compare_units(spec: str, out: str, uri: str, recorded: list[str], now: list[str]) -> None:
    """A recorded unit missing now is an error (the build cannot read what it began with); a
    unit added since is not read (a warning)."""
    current = set(now)
    missing = [unit for unit in recorded if unit not in current]
    if missing:
        raise MultipltError(f"--source {spec}: {len(missing)} of the {len(recorded)} input files the "
                            f"build under {out} listed when it began are gone (e.g. {missing[0]}; "
                            f"{uri}); put them back, or use a fresh --out")
    listed = set(recorded)
    added = sorted(unit for unit in now if unit not in listed)
    if added:
        LOG.warning("--source %s: %d input file(s) appeared after the build under %s began and are "
                    "not read (e.g. %s): every shard reads the listing of %s; use a fresh --out to "
                    "read them", spec, len(added), out, added[0], uri)


def check_shards(out: str, shards: dict[int, str]) -> None:
    """The finished shards under `out` ({k: folder}) all read one input (one revision, one
    listing: their stats.json's `source_revision` and `input`); else one clear error."""
    n = len(shards)
    groups: dict[tuple, list[int]] = {}
    for k, folder in sorted(shards.items()):
        stats = storage.read_json(storage.join(folder, "stats.json"))
        key = (stats.get("source_revision"), stats.get("input"), stats.get("units"))
        groups.setdefault(key, []).append(k)
    if len(groups) > 1:
        described = "; ".join(
            f"shard{'s' if len(ks) > 1 else ''} {', '.join(f'{k}/{n}' for k in ks)}: "
            f"{'revision ' + revision if revision else 'no revision'}, "
            f"{'?' if units is None else units} input files, listing {listing or 'not recorded'}"
            for (revision, listing, units), ks in groups.items())
        raise MultipltError(f"{out}: its shards read different inputs ({described}): the source "
                            f"changed while they ran; use a fresh --out")
