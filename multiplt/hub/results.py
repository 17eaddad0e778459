"""`multiplt publish results`: the results store as a Hub dataset (one parquet file + a card),
so the leaderboard is public. The parquet is written from the store's rows in a fixed order, so
the same store gives the same bytes and a rerun uploads nothing."""

from __future__ import annotations

import logging
import os
import tempfile

from multiplt.errors import MultipltError
from multiplt.hub import cards
from multiplt.hub.bundle import Bundle

LOG = logging.getLogger("multiplt.hub")
DATA_FILE = "data/results-00000-of-00001.parquet"


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
    table = table.sort(["model", "lang", "epoch", "run_id", "k"], nulls_last=True)
    with tempfile.TemporaryDirectory(prefix="multiplt-publish-results-") as workdir, Bundle(workdir) as bundle:
        path = os.path.join(workdir, "results.parquet")
        table.write_parquet(path, statistics=False)
        bundle.add_file(DATA_FILE, path)
        rows = table.to_dicts()
        bundle.add_text("README.md", cards.results_card(repo_id, rows, table.columns, license, hub_models(rows)))
        LOG.info("results store %s: %d rows", store, table.height)
        result = push_bundle(bundle, repo_id, "dataset", private, "main",
                             message=f"Publish results: {table.height} rows",
                             deletable=data_or_card, endpoint=endpoint, token=token)
    return {"repo": repo_id, "rows": table.height, **result}


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
