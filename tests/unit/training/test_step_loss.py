"""The training step's loss on the tiny model (CPU, fp32): causal_lm_loss (the loss of
transformers' forward: FSDP, gradient checkpointing, models other than GPTBigCode) is
transformers' own causal-LM loss, and a step over micro-batches [a, b] (gradient accumulation)
is the step over the one batch cat(a, b): the same loss, gradient norm and parameters after."""

import copy

import pytest
import torch

from multiplt.training import gptbigcode
from multiplt.training.config import TrainConfig
from multiplt.training.step import causal_lm_loss, lm_loss, setup_forward, train_step


@pytest.fixture(scope="module")
def model(tiny_model):
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    m.config.use_cache = False
    return m


def tokens(n: int, seed: int, vocab: int = 1024, seq_len: int = 16) -> torch.Tensor:
    return torch.randint(0, vocab, (n, seq_len), generator=torch.Generator().manual_seed(seed))


def test_causal_lm_loss_is_transformers_loss_with_labels(model):
    x = tokens(3, seed=1)
    with torch.no_grad():
        expected = model(input_ids=x, labels=x).loss
        got = causal_lm_loss(model(input_ids=x).logits, x)
        assert not gptbigcode.installed(model)
        plain = lm_loss(model, x)  # fast_forward off: transformers' forward + causal_lm_loss
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(plain, expected, rtol=1e-5, atol=1e-6)
    fast = copy.deepcopy(model)
    assert setup_forward(fast, TrainConfig(fast_forward=True, compile=False)) is None
    with torch.no_grad():
        torch.testing.assert_close(lm_loss(fast, x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fast_forward", [False, True])
def test_a_step_over_two_micro_batches_is_the_step_over_their_concatenation(model, fast_forward):
    """SGD (the update is proportional to the gradient, unlike Adam's first step) and no
    clipping, so the parameters after the step show the gradient's scale."""
    from accelerate import Accelerator

    accelerator = Accelerator(mixed_precision="no")
    a, b = tokens(2, seed=2), tokens(2, seed=3)
    results = []
    for micro in ([a, b], [torch.cat([a, b])]):
        m = copy.deepcopy(model)
        why_not = setup_forward(m, TrainConfig(fast_forward=fast_forward, compile=False))
        assert (why_not is None) == fast_forward
        m.train()
        optimizer = torch.optim.SGD(m.parameters(), lr=0.5)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        loss, norm = train_step(m, optimizer, scheduler, micro, accelerator, max_grad_norm=1e9)
        results.append((loss, norm, {k: v.detach().clone() for k, v in m.state_dict().items()}))
    (loss2, norm2, params2), (loss1, norm1, params1) = results
    torch.testing.assert_close(loss2, loss1, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(norm2, norm1, rtol=1e-4, atol=1e-6)
    moved = 0
    for name, value in params1.items():
        torch.testing.assert_close(params2[name], value, rtol=1e-4, atol=1e-6, msg=name)
        moved += not torch.equal(value, model.state_dict()[name])
    assert moved > 0  # the step did update the parameters
