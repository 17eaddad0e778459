"""The checkpoint manifest of a training output: `OUT/manifest.jsonl`, one JSON line per epoch
checkpoint

    {"uri", "epoch", "step", "tag", "eval_loss", "lang", "experiment", "base", "base_revision",
     "base_commit", "dataset_commit", "tokenizer", "run_start_step", "state_uri"}

(`base_commit`, `dataset_commit`: the Hub commits a Hub base and a Hub dataset were loaded at,
null otherwise and in rows written before they were recorded)

with tag `LANG-EXPERIMENT-epochN`; `tokenizer` is the checkpoint's own URI (every checkpoint
holds its tokenizer; rows written before base_revision existed name the base's). A row is appended only after its checkpoint is fully written,
so the manifest is the commit record: everything it lists is complete. `run_start_step` is the
optimizer step the process that wrote the row started from (0, or where it resumed).

Training writes it (`append`); generation resolves `--model OUT --revision TAG` through it
(`resolve`, also used by training for `--base OUT --revision TAG`; `row` gives the whole row) and
the fine-tune DAG reads it.
"""

from __future__ import annotations

from multiplt.errors import MultipltError, PlatformError

MANIFEST = "manifest.jsonl"


def manifest_uri(out: str) -> str:
    from multiplt import storage

    return storage.join(out, MANIFEST)


# what every row must hold, and of what type (the rest is informative)
REQUIRED = {"uri": str, "tag": str, "epoch": int, "lang": str, "experiment": str}


def read(out: str) -> list[dict]:
    """The manifest's rows (empty when there is none yet); a row without the fields every reader
    needs is an error naming the row and the field."""
    from multiplt import storage

    uri = manifest_uri(out)
    if not storage.exists(uri):
        return []
    return _checked(uri, storage.read_jsonl(uri))


def _checked(uri: str, rows: list[dict]) -> list[dict]:
    for i, row in enumerate(rows):
        bad = [k for k, typ in REQUIRED.items()
               if not isinstance(row.get(k), typ) or isinstance(row.get(k), bool) or row.get(k) in ("", None)]
        if not bad and row["epoch"] < 0:
            bad = ["epoch"]
        if bad:
            raise MultipltError(f"{uri} record {i + 1}: malformed checkpoint record ({', '.join(bad)} missing or "
                                f"of the wrong type; every row needs {', '.join(REQUIRED)})")
    return rows


def append(out: str, row: dict) -> None:
    """Add a row (replacing an older row of the same tag) with one atomic write."""
    from multiplt import storage

    rows = [r for r in read(out) if r.get("tag") != row["tag"]]
    rows.append(row)
    rows.sort(key=lambda r: r["epoch"])
    storage.write_jsonl(manifest_uri(out), rows)


def other_tokenizer(row: dict) -> str | None:
    """The tokenizer a row names when it is not the checkpoint's own (rows written before
    base_revision existed name the base's), else None."""
    tokenizer = row.get("tokenizer")
    return tokenizer if tokenizer != row.get("uri") else None


def row(out: str, tag: str, unknown_ok: bool = False) -> dict | None:
    """The row tagged `tag` of the training output `out` (a storage URI or local folder holding
    manifest.jsonl), with one read of the manifest; None when `out` is not a training output (a
    Hub name, a plain model folder). A tag the manifest does not list is an error naming the tags
    it has, or None with `unknown_ok`."""
    from multiplt import storage

    uri = manifest_uri(out)
    try:
        if not storage.exists(uri):
            return None
    except PlatformError:  # the store cannot be reached (exit 3, retried): not "no manifest"
        raise
    except MultipltError:  # not a storage URI at all (e.g. "bigcode/starcoderbase-1b")
        return None
    rows = _checked(uri, storage.read_jsonl(uri))
    for found in rows:
        if found["tag"] == tag:
            return found
    if unknown_ok:
        return None
    tags = ", ".join(r["tag"] for r in rows) or "none yet"
    raise MultipltError(f"{out} has no checkpoint tagged {tag!r}; its tags: {tags}")


def resolve(model: str, revision: str | None) -> str | None:
    """The checkpoint URI when `model` is a training output (a storage URI or local folder holding
    manifest.jsonl) and `revision` one of its tags; None when `model` is not a training output
    (a Hub name, a plain model folder) or no revision is given. A training output with an unknown
    tag is an error naming the tags it has."""
    if not revision or not model:
        return None
    found = row(model, revision)
    return found["uri"] if found else None
