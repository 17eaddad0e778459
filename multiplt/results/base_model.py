"""The base model a checkpoint was trained from, for the results store's `base_model` column, and
the one spelling of a model under which the leaderboard pairs a checkpoint with its base's run.

`results record` takes the base from where training wrote it, not from names: the checkpoint's
row in its training output's `manifest.jsonl` (`base`, as `train --base` took it: a Hub id, an
absolute local path, or a storage URI), else the checkpoint folder's own `_multiplt_train.yaml`
(`config.base`), which travels with the checkpoint when its output was moved.
"""

from __future__ import annotations

import logging
import os

from multiplt.errors import MultipltError, PlatformError

LOG = logging.getLogger("multiplt.results")


def checkpoint_base(config: dict, model: str, revision: str | None, run_uri: str) -> str | None:
    """The base model of the checkpoint a run record names, or None for a run of no checkpoint
    (a base model, a model from elsewhere). `model` and `revision` are the row's (the training
    output OUT, made absolute as the row stores it, and the checkpoint's tag): OUT's manifest row
    of that tag names the base; else the run record's `checkpoint_uri` folder's
    `_multiplt_train.yaml`. A checkpoint run (its record names a `checkpoint_uri`) whose base
    neither gives is recorded without one, with a warning: the leaderboard then pairs it by its
    training output's name. An unreachable store (PlatformError) is raised, as every read of
    `record` is (exit 3, retry later)."""
    checkpoint = config.get("checkpoint_uri")
    base = _manifest_base(model, revision) if revision else None
    if base is None and isinstance(checkpoint, str) and checkpoint:
        base = _run_config_base(checkpoint)
    if base is None and checkpoint:
        LOG.warning("%s: its base model cannot be read (no manifest row %s in %s, no %s in %s): "
                    "recorded without base_model; the leaderboard pairs it with a base by its "
                    "training output's name", run_uri, revision, model, _run_config_name(), checkpoint)
    return base


def _manifest_base(out: str, tag: str) -> str | None:
    from multiplt.storage import manifest

    try:
        row = manifest.row(out, tag, unknown_ok=True)
    except PlatformError:
        raise
    except MultipltError as exc:  # a malformed manifest: the checkpoint's own config may say
        LOG.debug("%s: %s", out, exc)
        return None
    base = (row or {}).get("base")
    return base if isinstance(base, str) and base else None


def _run_config_name() -> str:
    from multiplt.training.checkpoint import RUN_CONFIG

    return RUN_CONFIG


def _run_config_base(checkpoint: str) -> str | None:
    from multiplt.training.checkpoint import read_run_config

    try:
        run_config = read_run_config(checkpoint)
    except PlatformError:
        raise
    except MultipltError as exc:  # not YAML, not a run config, not a storage URI
        LOG.debug("%s: %s", checkpoint, exc)
        return None
    base = ((run_config or {}).get("config") or {}).get("base")
    return base if isinstance(base, str) and base else None


def model_identity(model: str) -> str:
    """`model` as the leaderboard compares models: a `file://` URI as its path, an absolute local
    path normalized, without a trailing `/`; a Hub id or a remote URI as written less a trailing
    `/`. (No filesystem access: the leaderboard may run where the models are not.)"""
    from multiplt.storage import uri as uris

    name = model.rstrip("/") or model
    if name.startswith("file://"):
        name = uris.local_path(name) or name
    if name.startswith("/"):
        name = os.path.normpath(name)
    return name
