"""A new run measures the base model's eval loss before its first step (the paper's script logged
eval at step 0) and writes it to OUT/logs/epoch0.jsonl. It draws no random numbers: with dropout
on, the trained weights equal those of the same run without it, bit for bit. A run killed before
epoch 1 starts again and rewrites the file; a run without held-out sequences writes none."""

import random
import shutil

import pytest

from multiplt import cli, storage
from multiplt.storage import manifest
from multiplt.training import loop

pytestmark = pytest.mark.slow

RECIPE = ["--epochs", "1", "--seq-len", "64", "--batch-size", "4", "--micro-batch-size", "2",
          "--warmup-steps", "2", "--lr", "1e-3", "--seed", "7", "--log-every", "50"]


@pytest.fixture(autouse=True)
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def with_dropout(tiny_model, tmp_path) -> str:
    from transformers import AutoConfig

    base = tmp_path / "base"
    shutil.copytree(tiny_model, base)
    config = AutoConfig.from_pretrained(base)
    config.resid_pdrop = config.embd_pdrop = config.attn_pdrop = 0.1
    config.save_pretrained(base)
    return str(base)


def train(data, base, out, *flags) -> int:
    return cli.main(["train", "--dataset", data, "--base", base, "--lang", "rkt", "--experiment", "x",
                     "--out", out, *RECIPE, *flags])


def test_eval_loss_at_step_0_changes_nothing_else(tiny_model, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    base = with_dropout(tiny_model, tmp_path)
    r = random.Random(0)
    data = str(tmp_path / "racket.jsonl")
    storage.write_jsonl(data, [{"content": f"#lang racket\n(define (f{i} x)\n  (+ x {r.randint(1, 50)}))\n"}
                               for i in range(150)])
    out = str(tmp_path / "run")
    assert train(data, base, out, "--eval-fraction", "0.1") == 0
    step0 = storage.read_jsonl(storage.join(out, "logs", "epoch0.jsonl"))
    rows = manifest.read(out)
    assert len(step0) == 1 and step0[0]["step"] == 0
    assert step0[0]["eval_loss"] > rows[0]["eval_loss"] > 0  # the base model, then trained

    # The same run without the step-0 eval trains to the same weights, bit for bit.
    plain = str(tmp_path / "plain")
    with monkeypatch.context() as m:
        m.setattr(loop, "eval_before_training", lambda *args, **kwargs: None)
        assert train(data, base, plain, "--eval-fraction", "0.1") == 0
    assert not storage.exists(storage.join(plain, "logs", "epoch0.jsonl"))
    got, want = (load_file(storage.local_path(storage.join(manifest.read(o)[0]["state_uri"], "model.safetensors")))
                 for o in (out, plain))
    assert got.keys() == want.keys() and all((got[k] == want[k]).all() for k in got)
    assert manifest.read(plain)[0]["eval_loss"] == rows[0]["eval_loss"]

    # Killed before epoch 1 (run config and epoch0.jsonl written, no manifest row): the rerun starts
    # again, rewrites the step-0 eval and finishes.
    for folder in ("checkpoints", "state"):
        shutil.rmtree(storage.local_path(storage.join(out, folder)))
    for name in ("manifest.jsonl", "logs/epoch1.jsonl"):
        storage.delete(storage.join(out, name))
    assert train(data, base, out, "--eval-fraction", "0.1") == 0
    assert storage.read_jsonl(storage.join(out, "logs", "epoch0.jsonl")) == step0
    assert [r["tag"] for r in manifest.read(out)] == ["rkt-x-epoch1"]

    # No held-out sequences: no step-0 eval, no file.
    none = str(tmp_path / "none")
    assert train(data, base, none, "--eval-fraction", "0") == 0
    assert not storage.exists(storage.join(none, "logs", "epoch0.jsonl"))
    assert storage.exists(storage.join(none, "logs", "epoch1.jsonl"))
