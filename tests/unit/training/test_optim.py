"""AdamW groups (no decay for biases and LayerNorm) and the warmup + cosine schedule."""

import math

import pytest
import torch

from multiplt.training.optim import build_optimizer, build_scheduler, decay_groups, lr_multiplier


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(10, 4)
        self.ln = torch.nn.LayerNorm(4)
        self.fc = torch.nn.Linear(4, 4)


def test_biases_and_layernorm_get_no_weight_decay():
    m = Block()
    decay, plain = decay_groups(m, 0.001)
    assert decay["weight_decay"] == 0.001 and plain["weight_decay"] == 0.0
    ids = lambda ps: {id(p) for p in ps}  # noqa: E731
    assert ids(decay["params"]) == ids([m.emb.weight, m.fc.weight])
    assert ids(plain["params"]) == ids([m.ln.weight, m.ln.bias, m.fc.bias])


def test_schedule_matches_transformers_cosine_with_warmup():
    from transformers import get_cosine_schedule_with_warmup

    ref = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    ref_sched = get_cosine_schedule_with_warmup(ref, num_warmup_steps=10, num_training_steps=100)
    opt = build_optimizer(Block(), lr=1.0, weight_decay=0.001)
    sched = build_scheduler(opt, 10, 100)
    for _ in range(100):
        assert sched.get_last_lr()[0] == pytest.approx(ref_sched.get_last_lr()[0], abs=1e-12)
        ref.step(), ref_sched.step(), opt.step(), sched.step()


def test_schedule_shape():
    assert lr_multiplier(0, 100, 1000) == 0.0
    assert lr_multiplier(50, 100, 1000) == 0.5
    assert lr_multiplier(100, 100, 1000) == 1.0
    assert lr_multiplier(550, 100, 1000) == pytest.approx(0.5)
    assert lr_multiplier(1000, 100, 1000) == pytest.approx(0.0, abs=1e-12)
    assert lr_multiplier(550, 100, 1000, "linear") == pytest.approx(0.5)
    assert lr_multiplier(550, 100, 1000, "constant") == 1.0
    assert math.isfinite(lr_multiplier(5, 0, 0))
