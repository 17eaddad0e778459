"""`multiplt publish results`: the results store as a Hub dataset (one parquet file + a card),
so the leaderboard is public. The parquet is written from the store's rows in a fixed order, so
the same store gives the same bytes and a rerun uploads nothing.

The published rows are the store's as a reader of the Hub can use them (`public_rows`): a
checkpoint that `publish checkpoints` published is named as the Hub names it (model REPO,
revision TAG: `from_pretrained(model, revision=revision)` loads it), and no row carries a place
of the deployment: no `run_uri` column, a storage URI or absolute local path in model, tokenizer
or base_model is its public name `NAME~HASH` (place_name: its last path segment and a hash of
the whole place, so two places never share a name and none is mistaken for a Hub id), one in
benchmark is its file name, and a run folder's name that spells the model's path (`dataset`,
and `run_id`, which begins with it) spells the public name instead. The local store keeps its
URIs: they are how the platform finds the runs and checkpoints."""

from __future__ import annotations

import logging
import os
import tempfile

from multiplt.errors import MultipltError
from multiplt.hub import cards
from multiplt.hub.bundle import Bundle

LOG = logging.getLogger("multiplt.hub")
DATA_FILE = "data/results-00000-of-00001.parquet"
#: store columns that only say where something is in the deployment: left out of the Hub's rows
PRIVATE_COLUMNS = ("run_uri",)
#: store columns that may name a model or tokenizer at a place of the deployment: published under
#: the place's public name (place_name), as `model` is
PLACE_COLUMNS = ("tokenizer", "base_model")
#: store columns that may name a file at a place of the deployment: published as its file name
#: (a benchmark's file name names the benchmark, in every place it is kept)
FILE_COLUMNS = ("benchmark",)
#: marks a public name made from a place: a Hub id (`name`, `org/name`: letters, digits, `-`,
#: `_`, `.`) never holds it, so such a name is never a Hub model's
PLACE_MARK = "~"
SORT = ["model", "lang", "epoch", "run_id", "k"]


def publish_results(store: str, repo_id: str, private: bool = False,
                    license: str = cards.DEFAULT_LICENSE, endpoint: str | None = None) -> dict:
    from multiplt import storage
    from multiplt.hub.auth import resolve_token
    from multiplt.hub.publish import data_or_card, push_bundle
    from multiplt.results import read_store

    token = resolve_token()  # a missing token is refused before the store is read
    if not storage.exists(store):
        raise MultipltError(f"--store {store}: no results store there (record runs first with "
                            f"`multiplt results record`)")
    table = read_store(store)
    if table.height == 0:
        raise MultipltError(f"--store {store} holds no rows: nothing to publish")
    hub = hub_models(table.to_dicts())
    table = public_rows(table, hub).sort(SORT, nulls_last=True)
    named = {(repo, tag): name for name in hub.values() for repo, tag in [name.rsplit("@", 1)]}
    with tempfile.TemporaryDirectory(prefix="multiplt-publish-results-") as workdir, Bundle(workdir) as bundle:
        path = os.path.join(workdir, "results.parquet")
        table.write_parquet(path, statistics=False)
        bundle.add_file(DATA_FILE, path)
        rows = table.to_dicts()
        bundle.add_text("README.md", cards.results_card(repo_id, rows, table.columns, license, named))
        LOG.info("results store %s: %d rows", store, table.height)
        result = push_bundle(bundle, repo_id, "dataset", private, "main",
                             message=f"Publish results: {table.height} rows",
                             deletable=results_own(repo_id, data_or_card), endpoint=endpoint,
                             token=token)
    return {"repo": repo_id, "rows": table.height, **result}


def results_own(repo_id: str, data_or_card):
    """`deletable` of a results publication: its card (replaced) and its table DATA_FILE, the one
    data file `publish results` writes. Any other `data/` file of the repo another publication
    wrote (a dataset's splits, `publish dataset`): publishing the results there is refused
    (MultipltError, before anything is uploaded) instead of deleting it."""
    def deletable(path: str) -> bool:
        if path.startswith("data/") and path != DATA_FILE:
            raise MultipltError(f"--repo {repo_id} holds {path}, a data file `multiplt publish results` "
                                f"did not write (a dataset's split, from `multiplt publish dataset`?), "
                                f"which publishing the results there would delete; nothing was uploaded: "
                                f"publish the results to a dataset repo of their own")
        return data_or_card(path)
    return deletable


def hub_models(rows: list[dict]) -> dict[tuple[str, str], str]:
    """{(model, revision): "REPO@TAG"} for rows whose model is a training output that `publish
    checkpoints` published (its published.json names the repo and the tags), so that the card
    names such checkpoints by what loads anywhere, not by the deployment's folder."""
    from multiplt import storage

    out = {}
    for model in sorted({r["model"] for r in rows if r.get("model")}):
        if "://" not in model and not model.startswith("/"):
            continue  # a Hub model: named by its id already
        try:
            uri = storage.join(model.rstrip("/"), "published.json")
            record = storage.read_json(uri) if storage.exists(uri) else None
        except Exception:  # noqa: BLE001 - a folder that moved away: no Hub name
            record = None
        if isinstance(record, dict) and isinstance(record.get("repo"), str):
            out.update({(model, tag): f"{record['repo']}@{tag}" for tag in record.get("tags") or []})
    return out


def is_place(value) -> bool:
    """Whether a store value names a place of the deployment: a storage URI (`s3://`, `file://`)
    or an absolute local path. A Hub id (`org/name`), a tag or a file name does not."""
    return isinstance(value, str) and ("://" in value or value.startswith("/"))


def place_name(value: str) -> str:
    """A place's public name: `NAME~HASH`, its last path segment, PLACE_MARK and the first 8 hex
    digits of the sha256 of the place (a `file://` URI as its path, without a trailing `/`:
    `s3://b/training/sc1b-multiplt-lua/` -> `sc1b-multiplt-lua~<8 hex>`). The hash keeps two
    places with one folder name apart (`/a/m`, `/b/m`), and gives a place the same name in every
    column, store and publication; the mark keeps `/x/gpt2` from reading as the Hub's `gpt2`."""
    import hashlib

    place = value.rstrip("/") or value
    if place.startswith("file://"):
        place = place[len("file://"):] or "/"
    name = place.rsplit("/", 1)[-1] or "place"
    return f"{name}{PLACE_MARK}{hashlib.sha256(place.encode()).hexdigest()[:8]}"


def public_places(value):
    """`value` (a YAML or JSON value: a training config, a card's setting) with every place in it
    (is_place, at any depth) replaced by its public name (place_name); anything else, Hub ids
    included, as it is. A public name is no place, so applying it again changes nothing."""
    if isinstance(value, dict):
        return {key: public_places(item) for key, item in value.items()}
    if isinstance(value, list):
        return [public_places(item) for item in value]
    return place_name(value) if is_place(value) else value


def file_name(value: str) -> str:
    """A file's last path segment (`s3://b/benchmarks/humaneval-lua.jsonl` -> `humaneval-lua.jsonl`)."""
    return value.rstrip("/").rsplit("/", 1)[-1] or value


def public_rows(table, hub: dict[tuple[str, str], str]):
    """The store's rows as `publish results` publishes them (the module's docstring): the table
    without PRIVATE_COLUMNS; a row whose (model, revision) `hub` names REPO@TAG (hub_models)
    gets model REPO and revision TAG, another whose model is a place gets the place's public name
    (place_name), and so does every place in PLACE_COLUMNS (a base model's folder has one name as
    `model` and as `base_model`); a place in FILE_COLUMNS is its file name; where the model
    changed, a run folder name of the platform's form
    (`<benchmark>-<lang>-<model>-<revision>-<temperature>`, run_folder_name) in `dataset` gets
    the new model's part, and `run_id` (that name, `@`, the config's hash) with it. Other
    values, and the column types, are the store's."""
    import polars as pl

    schema = {name: dtype for name, dtype in table.schema.items() if name not in PRIVATE_COLUMNS}
    rows = []
    for row in table.to_dicts():
        row = {name: row[name] for name in schema}
        model = row.get("model")
        named = hub.get((model, row.get("revision")))
        if named is not None:
            row["model"], row["revision"] = named.rsplit("@", 1)
        elif is_place(model):
            row["model"] = place_name(model)
        for name in PLACE_COLUMNS:
            if name in row and is_place(row[name]):
                row[name] = place_name(row[name])
        for name in FILE_COLUMNS:
            if name in row and is_place(row[name]):
                row[name] = file_name(row[name])
        if row.get("model") != model:
            _rename_run(row)
        rows.append(row)
    return pl.DataFrame(rows, schema=schema)


def _rename_run(row: dict) -> None:
    """`dataset` and `run_id` with the model part of a platform run folder name (the folder's
    third `-` part: the model as a path segment) spelled from the row's public model."""
    from multiplt.evaluation.run_folder import safe_part

    dataset = row.get("dataset")
    if not isinstance(dataset, str):
        return
    parts = dataset.split("-")
    temperature = row.get("temperature")
    if (len(parts) != 5 or parts[1] != safe_part(row.get("lang") or "")
            or temperature is not None and parts[4] != safe_part(f"{float(temperature):g}")):
        LOG.debug("%s: not a run folder name of the platform's form; published as it is", dataset)
        return
    parts[2] = safe_part(row["model"])
    public = "-".join(parts)
    run_id = row.get("run_id")
    if isinstance(run_id, str) and run_id.startswith(f"{dataset}@"):
        row["run_id"] = public + run_id[len(dataset):]
    row["dataset"] = public
