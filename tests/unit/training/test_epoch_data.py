"""What `multiplt train` feeds the model, on the tiny model on the CPU: with gradient accumulation
(micro-batch 2 of a batch of 4) every step trains on all of its batch's sequences, each training
sequence is seen exactly once per epoch, in epoch_order's order for that epoch (a new order every
epoch), and every epoch writes its checkpoint tagged LANG-EXPERIMENT-epochN."""

import collections
import json

import pytest
import torch

from multiplt import cli, storage
from multiplt.storage import manifest
from multiplt.training import data, loop
from multiplt.training.packing import epoch_order

SEED = 7
BATCH, MICRO, EPOCHS = 4, 2, 2


@pytest.fixture(scope="module")
def run(tiny_model, tmp_path_factory):
    """One 2-epoch run; records the packed data and, per optimizer step, its micro-batches."""
    tmp = tmp_path_factory.mktemp("epochs")
    docs = [f"(define (f{i} x) (+ x {i * 37}))" for i in range(60)]
    (tmp / "racket.jsonl").write_text("".join(json.dumps({"content": d}) + "\n" for d in docs))
    out = tmp / "out"
    seen = {"packed": None, "steps": []}
    real_prepare, real_step = data.prepare, loop.train_step

    def prepare(*args, **kwargs):
        seen["packed"] = real_prepare(*args, **kwargs)
        return seen["packed"]

    def train_step(model, optimizer, scheduler, micro_batches, *args, **kwargs):
        seen["steps"].append([m.detach().cpu().clone() for m in micro_batches])
        return real_step(model, optimizer, scheduler, micro_batches, *args, **kwargs)

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny shapes: fastest single-threaded on busy cores
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(data, "prepare", prepare)
        mp.setattr(loop, "train_step", train_step)
        rc = cli.main(["train", "--recipe", "tiny", "--dataset", str(tmp / "racket.jsonl"), "--base", tiny_model,
                       "--lang", "rkt", "--experiment", "x", "--out", str(out), "--seq-len", "16",
                       "--batch-size", str(BATCH), "--micro-batch-size", str(MICRO), "--epochs", str(EPOCHS),
                       "--seed", str(SEED), "--eval-fraction", "0.1"])
    torch.set_num_threads(before)
    assert rc == 0
    return {**seen, "out": str(out)}


def epochs_seen(run) -> tuple[int, list[list[int]]]:
    """(steps per epoch, the packed-train indices given to the model in each epoch, in order)."""
    train = run["packed"].train
    index = {tuple(row.tolist()): i for i, row in enumerate(train)}
    assert len(index) == train.shape[0], "the test data must pack into distinct sequences"
    per_epoch = train.shape[0] // BATCH
    assert per_epoch >= 2 and len(run["steps"]) == per_epoch * EPOCHS
    flat = [[index[tuple(row.tolist())] for m in step for row in m] for step in run["steps"]]
    return per_epoch, [sum(flat[e * per_epoch:(e + 1) * per_epoch], []) for e in range(EPOCHS)]


def test_each_step_trains_on_its_whole_batch_and_each_sequence_once_per_epoch(run):
    """batch 4 as 2 micro-batches of 2: all 4 sequences of each step's batch reach the model, and
    over an epoch each training sequence does exactly once (the tail short of a batch excepted)."""
    per_epoch, epochs = epochs_seen(run)
    for step in run["steps"]:
        assert [m.shape[0] for m in step] == [MICRO] * (BATCH // MICRO)  # accumulation 2
    n = run["packed"].train.shape[0]
    for seen in epochs:
        assert len(seen) == per_epoch * BATCH
        assert max(collections.Counter(seen).values()) == 1
        assert set(seen) <= set(range(n)) and len(set(range(n)) - set(seen)) == n % BATCH


def test_each_epoch_visits_the_sequences_in_its_own_order(run):
    """Epoch e takes its batches from epoch_order(n, e, seed): the orders differ between epochs."""
    per_epoch, epochs = epochs_seen(run)
    n = run["packed"].train.shape[0]
    for epoch, seen in enumerate(epochs, start=1):
        assert seen == epoch_order(n, epoch, SEED)[:per_epoch * BATCH]
    assert epochs[0] != epochs[1]


def test_every_epoch_writes_its_tagged_checkpoint(run):
    out = run["out"]
    rows = manifest.read(out)
    assert [r["tag"] for r in rows] == ["rkt-x-epoch1", "rkt-x-epoch2"]
    assert [r["epoch"] for r in rows] == [1, 2]
    per_epoch = run["packed"].train.shape[0] // BATCH
    assert [r["step"] for r in rows] == [per_epoch, 2 * per_epoch]
    for r in rows:
        assert r["uri"] == storage.join(out, "checkpoints", r["tag"])
        names = {storage.basename(u) for u in storage.ls(r["uri"])}
        assert {"config.json", "model.safetensors"} <= names, names
        assert r["eval_loss"] is not None
