"""Session fixture `tiny_model`: a local directory holding a very small GPTBigCode model and its
byte-level BPE tokenizer, built by `multiplt.models.tiny` (the code behind `multiplt model
init-tiny`) with a smaller shape. It is built once and cached under data/test-cache/, keyed by
the hash of the builder's source and this shape, so later sessions reuse it (a few seconds to build)."""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
CACHE = REPO / "data" / "test-cache"

# Small enough to build in seconds on 2 cores, big enough to exercise batching and caching.
TEST_SHAPE = dict(vocab_size=1024, n_layer=2, n_embd=64, n_head=4, n_positions=1024, seq_len=128,
                  batch_size=8, steps=30, corpus_bytes=500_000, seed=0)


def tiny_model_path() -> pathlib.Path:
    from multiplt.models import tiny
    from multiplt.models.tiny import TinyConfig, build_tiny_model

    config = TinyConfig(**TEST_SHAPE)
    key = hashlib.sha256(
        pathlib.Path(tiny.__file__).read_bytes() + json.dumps(dataclasses.asdict(config),
                                                              sort_keys=True).encode()
    ).hexdigest()[:16]
    out = CACHE / f"tiny-model-{key}"
    if (out / "config.json").exists():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"tiny-model-{key}.lock", "w") as lock:  # other sessions build it at once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "config.json").exists():
            build_tiny_model(str(out), config)
    return out


@pytest.fixture(scope="session")
def tiny_model() -> str:
    """Path (str) of a local Hugging Face model directory: GPTBigCode + byte-level BPE tokenizer."""
    return str(tiny_model_path())
