"""The translated dataset folder, one shard of one language at a time:

    URI/data/<split>-KKKKK-of-NNNNN.parquet       content + provenance (as nuprl/MultiPL-T + columns)
    URI/excluded/excluded-<split>-K...parquet     every dropped function or sample, with its reason
    URI/funnel/<code>-K-of-N.json                 one shard's funnel; URI/funnel.json sums them
    URI/config/<code>-K-of-N.json                 the resolved config that made the shard
    URI/README.md                                 a dataset card naming each language's split

`<split>` is the published split name (racket, julia, r, ocaml, lua), which `multiplt train
--lang` reads by default, and which the card maps to a split for `datasets` and the Hub.
"""

from __future__ import annotations

from multiplt import storage

DATA_SCHEMA = {"content": "str", "sha1": "str", "id": "str", "entrypoint": "str", "sample": "int",
               "pass_rate": "float", "model": "str", "revision": "str"}
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


def _frame(rows: list[dict], schema: dict):
    import polars as pl

    types = {"str": pl.String, "int": pl.Int64, "float": pl.Float64}
    def cast(value, t):
        return value if value is None or t != "str" else str(value)

    columns = {name: [cast(r.get(name), t) for r in rows] for name, t in schema.items()}
    return pl.DataFrame(columns, schema={name: types[t] for name, t in schema.items()})


def write_shard(out: str, code: str, split: str, shard: tuple[int, int], kept: list[dict],
                excluded: list[dict], funnel: dict, config: dict) -> None:
    """Write one shard's files; the data file goes last, so its presence means the shard is done."""
    storage.write_parquet(excluded_uri(out, split, shard), _frame(excluded, EXCLUDED_SCHEMA))
    storage.write_json(config_uri(out, code, shard), config, indent=2)
    storage.write_json(funnel_uri(out, code, shard), funnel, indent=2)
    storage.write_parquet(data_uri(out, split, shard), _frame(kept, DATA_SCHEMA))
    write_summary(out)


def write_summary(out: str) -> dict:
    """URI/funnel.json (per language, summed over the shards written so far) and the card; each
    written only when it changes, so a rerun of finished shards writes nothing."""
    merged: dict[str, dict] = {}
    folder = storage.join(out, "funnel")
    for uri in sorted(storage.ls(folder)) if storage.exists(folder) else []:
        if not uri.endswith(".json"):
            continue
        shard = storage.read_json(uri)
        lang = merged.setdefault(shard["language"], {"shards": [], "dropped": {}})
        lang["shards"].append(shard["shard"])
        for key, value in shard["counts"].items():
            lang[key] = lang.get(key, 0) + value
        for reason, value in shard.get("dropped", {}).items():
            lang["dropped"][reason] = lang["dropped"].get(reason, 0) + value
    storage.write_json(storage.join(out, "funnel.json"), merged, indent=2, if_changed=True)
    storage.write_text(storage.join(out, "README.md"), card(out), if_changed=True)
    return merged


def card(out: str) -> str:
    """A dataset card whose YAML maps each language's files to a split of that name."""
    data = storage.join(out, "data")
    names = sorted({storage.basename(u).split("-")[0] for u in storage.ls(data)
                    if u.endswith(".parquet")}) if storage.exists(data) else []
    configs = "".join(f"  - split: {n}\n    path: data/{n}-*.parquet\n" for n in names)
    return ("---\nconfigs:\n- config_name: default\n  data_files:\n" + configs + "---\n\n"
            "# MultiPL-T-style translations\n\nPython functions translated by an LLM and kept "
            "only when their translated tests pass in the sandbox (`multiplt translate`). "
            "Column `content` is the training text; the other columns say where it came from. "
            "`funnel.json` counts each filter; `excluded/` lists every dropped function or sample "
            "with its reason.\n")
