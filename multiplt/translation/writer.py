"""The translated dataset folder, one shard of one language at a time:

    URI/data/<split>-KKKKK-of-NNNNN.parquet       content + provenance (as nuprl/MultiPL-T + columns)
    URI/excluded/excluded-<split>-K...parquet     every dropped function or sample, with its reason
    URI/funnel/<code>-K-of-N.json                 one shard's funnel; URI/funnel.json sums them
    URI/config/<code>-K-of-N.json                 the resolved config that made the shard
    URI/README.md                                 a dataset card naming each language's split

funnel.json and the card cover a language once every shard of it is collected (a shard's data
file exists), never part of its shards; the card leaves out a split that kept no row.

`<split>` is the published split name (racket, julia, r, ocaml, lua), which `multiplt train
--lang` reads by default, and which the card maps to a split for `datasets` and the Hub.
"""

from __future__ import annotations

import logging
import re
from typing import Iterable, NamedTuple

from multiplt import storage

LOG = logging.getLogger("multiplt.translation")

DATA_SCHEMA = {"content": "str", "sha1": "str", "id": "str", "entrypoint": "str", "sample": "int",
               "pass_rate": "float", "model": "str", "revision": "str", "translated_tests": "int",
               "source_tests": "int"}
EXCLUDED_SCHEMA = {"sha1": "str", "id": "str", "entrypoint": "str", "sample": "int", "stage": "str",
                   "reason": "str", "duplicate_of": "int"}


def shard_tag(shard: tuple[int, int]) -> str:
    return f"{shard[0]}-of-{shard[1]}"


def _file(out: str, folder: str, split: str, shard: tuple[int, int]) -> str:
    return storage.join(out, folder, f"{split}-{shard[0]:05d}-of-{shard[1]:05d}.parquet")


def excluded_uri(out: str, split: str, shard: tuple[int, int]) -> str:
    """Named `excluded-<split>-...`, so that readers of `<split>-*` files (multiplt train) skip it."""
    return _file(out, "excluded", f"excluded-{split}", shard)


def data_uri(out: str, split: str, shard: tuple[int, int]) -> str:
    return _file(out, "data", split, shard)


def config_uri(out: str, code: str, shard: tuple[int, int]) -> str:
    return storage.join(out, "config", f"{code}-{shard_tag(shard)}.json")


def funnel_uri(out: str, code: str, shard: tuple[int, int]) -> str:
    return storage.join(out, "funnel", f"{code}-{shard_tag(shard)}.json")


# A sharded stage's files name their shard: translate's data/<split>-K-of-N.parquet, testgen's
# tests/shard-K-of-N.parquet. A shard's file is written whole once the shard is done, so a
# missing K means the run has not finished (killed, failed, or still running).
_SHARD_FILE = re.compile(r"^(?P<prefix>.+)-(?P<k>\d+)-of-(?P<n>\d+)(?P<ext>\.parquet|\.jsonl|\.jsonl\.gz)$")


class ShardGap(NamedTuple):
    prefix: str  # the names' part before -K-of-N, with its folder as the names give it
    n: int
    held: int  # how many of the N shards have a file
    missing: list[str]  # the names of the missing files, spelled as the given ones


def shard_gaps(names: Iterable[str]) -> list[ShardGap]:
    """Each run of `<prefix>-K-of-N` files among `names` of which some K < N has no file (the
    rule `publish dataset`, `translate --tests` and `train --dataset` share); other names are
    not shards and never a gap."""
    found: dict[tuple[str, str, str], set[int]] = {}
    for name in names:
        match = _SHARD_FILE.match(name)
        if match:
            found.setdefault((match["prefix"], match["n"], match["ext"]), set()).add(int(match["k"]))
    gaps = []
    for (prefix, n, ext), ks in sorted(found.items()):
        missing = [f"{prefix}-{k:0{len(n)}d}-of-{n}{ext}" for k in range(int(n)) if k not in ks]
        if missing:
            gaps.append(ShardGap(prefix, int(n), len(ks & set(range(int(n)))), missing))
    return gaps


def missing_flags(gap: ShardGap) -> str:
    """The `--shard K/N` values of the missing shards (at most three, then how many more)."""
    ks = [int(_SHARD_FILE.match(name)["k"]) for name in gap.missing]
    more = f" and {len(ks) - 3} more" if len(ks) > 3 else ""
    return ", ".join(f"{k}/{gap.n}" for k in ks[:3]) + more


def _frame(rows: list[dict], schema: dict):
    import polars as pl

    types = {"str": pl.String, "int": pl.Int64, "float": pl.Float64}
    def cast(value, t):
        return value if value is None or t != "str" else str(value)

    columns = {name: [cast(r.get(name), t) for r in rows] for name, t in schema.items()}
    return pl.DataFrame(columns, schema={name: types[t] for name, t in schema.items()})


def write_shard(out: str, code: str, split: str, shard: tuple[int, int], kept: list[dict],
                excluded: list[dict], funnel: dict, config: dict) -> None:
    """Write one shard's files; the data file goes last, so its presence means the shard is done.
    A shard that kept no row still gets its (empty) data file: it marks the shard as done. A
    shard collected again (another --n) loses its data file first: a collect cut after the new
    config (its n) and before the new data file would otherwise leave the old rows beside a
    config that says they are the new ones, and the rerun would take the shard as written."""
    data = data_uri(out, split, shard)
    if storage.exists(data):
        storage.delete(data)
    storage.write_parquet(excluded_uri(out, split, shard), _frame(excluded, EXCLUDED_SCHEMA))
    storage.write_json(config_uri(out, code, shard), config, indent=2)
    storage.write_json(funnel_uri(out, code, shard), funnel, indent=2)
    storage.write_parquet(data, _frame(kept, DATA_SCHEMA))
    write_summary(out, report=(code,))


_SHARD = re.compile(r"(?P<k>\d+)-of-(?P<n>\d+)")


def shard_status(out: str) -> dict[str, dict]:
    """Per language code found in OUT (its `work/<code>/K-of-N/` folders or `funnel/` files):
    `{"n": N or None, "funnels": {K: shard funnel}, "missing": ["K-of-N", ...]}`. A shard counts
    as collected when both its funnel file and its data file (written last) exist; `missing`
    names the shards of its N that are not (every one when OUT holds shards of two N, which
    translate refuses to make: `n` is then None)."""
    found: dict[str, dict] = {}

    def entry(code: str) -> dict:
        return found.setdefault(code, {"ns": set(), "funnels": {}})

    work = storage.join(out, "work")
    for uri in storage.ls(work) if storage.exists(work) else []:
        if uri.endswith("/"):
            code = storage.basename(uri.rstrip("/"))
            for sub in storage.ls(uri):
                match = _SHARD.fullmatch(storage.basename(sub.rstrip("/")))
                if sub.endswith("/") and match:
                    entry(code)["ns"].add(int(match["n"]))
    data = storage.join(out, "data")
    written = {storage.basename(u) for u in storage.ls(data)} if storage.exists(data) else set()
    folder = storage.join(out, "funnel")
    for uri in sorted(storage.ls(folder)) if storage.exists(folder) else []:
        if not uri.endswith(".json"):
            continue
        shard = storage.read_json(uri)
        k, n = (int(v) for v in shard["shard"].split("-of-"))
        lang = entry(shard["language"])
        lang["ns"].add(n)
        split = shard.get("split") or _split(shard["language"])
        if storage.basename(data_uri(out, split, (k, n))) in written:
            lang["funnels"][k] = shard
    status = {}
    for code, lang in sorted(found.items()):
        n = next(iter(lang["ns"])) if len(lang["ns"]) == 1 else None
        missing = [f"{k}-of-{n}" for k in range(n) if k not in lang["funnels"]] if n else \
            sorted(f"{k}-of-{m}" for m in lang["ns"] for k in range(m))
        status[code] = {"n": n, "funnels": lang["funnels"], "missing": missing}
    return status


def merge(out: str) -> tuple[dict, dict]:
    """(merged, incomplete): the funnel of every language of which every shard is collected,
    summed over its shards, and {code: its missing shards} for the others."""
    merged, incomplete = {}, {}
    for code, lang in shard_status(out).items():
        if lang["missing"]:
            incomplete[code] = lang["missing"]
            continue
        total = merged[code] = {"shards": [], "dropped": {}}
        for k in sorted(lang["funnels"]):
            shard = lang["funnels"][k]
            total["shards"].append(shard["shard"])
            for key, value in shard["counts"].items():
                total[key] = total.get(key, 0) + value
            for reason, value in shard.get("dropped", {}).items():
                total["dropped"][reason] = total["dropped"].get(reason, 0) + value
    return merged, incomplete


def write_summary(out: str, report: tuple[str, ...] = ()) -> dict:
    """URI/funnel.json and the card, over the languages of which every shard is collected (as
    testgen writes its funnel.json only once every shard is done): a language with shards not
    collected yet is left out of both, so neither covers part of its data. Each file is written
    only when it changes, so a rerun of finished shards writes nothing. For the languages in
    `report` (those the command ran) the log says when they wait for shards or kept no row."""
    merged, incomplete = merge(out)
    summary = storage.join(out, "funnel.json")
    if merged or storage.exists(summary):  # none before a first language is complete
        storage.write_json(summary, merged, indent=2, if_changed=True)
        storage.write_text(storage.join(out, "README.md"), card(out, merged), if_changed=True)
    for code in report:
        if code in incomplete:
            LOG.info("translate %s: funnel.json and the card (README.md) leave it out until every "
                     "shard is collected (not yet: %s)", code, ", ".join(incomplete[code]))
        elif code in merged and not merged[code].get("after_rouge_l"):
            LOG.warning("translate %s: kept 0 rows over all its shards (funnel.json); the card "
                        "(README.md) has no %s split, as datasets cannot load an empty split",
                        code, _split(code))
    return merged


def _split(code: str) -> str:
    from multiplt import languages

    return languages.get(code).split


def card(out: str, merged: dict | None = None) -> str:
    """A dataset card whose YAML maps each language's files to a split of that name: the
    languages of which every shard is collected (`merged`, from the shards' funnels) and that
    kept at least one row (`datasets.load_dataset` refuses a split without rows, and with it the
    whole folder)."""
    merged = merge(out)[0] if merged is None else merged
    rows = {_split(code): lang.get("after_rouge_l", 0) for code, lang in merged.items()}
    names = sorted(s for s, n in rows.items() if n)
    empty = sorted(s for s, n in rows.items() if not n)
    configs = "".join(f"  - split: {n}\n    path: data/{n}-*.parquet\n" for n in names)
    files = "  data_files:\n" + configs if names else "  data_files: []\n"
    note = (f"\n{', '.join(f'`{s}`' for s in empty)} kept no rows: no split (the split's data "
            "files hold no row; `funnel.json` and `excluded/` say why).\n") if empty else ""
    return ("---\nconfigs:\n- config_name: default\n" + files + "---\n\n"
            "# MultiPL-T-style translations\n\nPython functions translated by an LLM and kept "
            "only when their translated tests pass in the sandbox (`multiplt translate`). "
            "Column `content` is the training text; the other columns say where it came from. "
            "`funnel.json` counts each filter; `excluded/` lists every dropped function or sample "
            "with its reason.\n" + note)
