"""multiplt's GPTBigCode training forward (multiplt/training/gptbigcode.py) against the plain
transformers model: same loss and gradients (fp32: to rounding, with dropout on, since it draws
the same random numbers in the same order; bf16 autocast: within bf16 tolerance), the fused
chunked LM head + cross-entropy against F.cross_entropy, the state dict untouched, and the
optimizer-fused gradient clipping against torch's clip_grad_norm_. CPU only, seconds."""

import copy
import types

import pytest
import torch
import torch.nn.functional as F

from multiplt.training import gptbigcode
from multiplt.training.config import TrainConfig
from multiplt.training.step import clip_grad_norm, lm_loss, setup_forward


def tiny(multi_query=True, act="gelu_pytorch_tanh", dropout=0.1, tie=True):
    from transformers import AutoModelForCausalLM, GPTBigCodeConfig

    config = GPTBigCodeConfig(vocab_size=300, n_positions=64, n_embd=64, n_layer=2, n_head=4,
                              multi_query=multi_query, activation_function=act, attn_pdrop=dropout,
                              embd_pdrop=dropout, resid_pdrop=dropout, use_cache=False, bos_token_id=0,
                              eos_token_id=0, tie_word_embeddings=tie)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")


def pair(**kw):
    ref = tiny(**kw)
    fast = copy.deepcopy(ref)
    gptbigcode.install(fast)
    return ref, fast


def losses_and_grads(ref, fast, ids, train=True):
    ref.train(train), fast.train(train)
    torch.manual_seed(1)
    a = ref(input_ids=ids, labels=ids).loss
    a.backward()
    torch.manual_seed(1)
    b = fast(input_ids=ids, multiplt_loss=True)
    b.backward()
    return a, b


def max_rel_grad_diff(ref, fast):
    return max(((p.grad - q.grad).norm() / p.grad.norm()).item()
               for p, q in zip(ref.parameters(), fast.parameters()))


@pytest.mark.parametrize("multi_query", [True, False])
@pytest.mark.parametrize("act", ["gelu_pytorch_tanh", "gelu"])
@pytest.mark.parametrize("train", [True, False])
def test_fp32_loss_and_gradients_match_transformers(multi_query, act, train, monkeypatch):
    monkeypatch.setattr(gptbigcode, "CHUNK_ROWS", 50)  # several chunks of the LM head
    ref, fast = pair(multi_query=multi_query, act=act)
    ids = torch.randint(0, 300, (3, 40))
    a, b = losses_and_grads(ref, fast, ids, train)
    assert b.item() == pytest.approx(a.item(), rel=1e-6, abs=1e-6)
    assert max_rel_grad_diff(ref, fast) < 1e-5


def test_untied_head_and_bf16_autocast_within_tolerance(monkeypatch):
    monkeypatch.setattr(gptbigcode, "CHUNK_ROWS", 64)
    ref, fast = pair(dropout=0.0, tie=False)
    ids = torch.randint(0, 300, (2, 48))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = losses_and_grads(ref, fast, ids)
    assert abs(a.item() - b.item()) < 2e-2
    assert max_rel_grad_diff(ref, fast) < 3e-2
    # the head's gradient reaches the untied lm_head, and in the parameters' dtype
    assert fast.lm_head.weight.grad is not None and fast.lm_head.weight.grad.dtype == torch.float32


def test_fused_head_matches_cross_entropy_and_skips_ignored_rows():
    torch.manual_seed(0)
    h = torch.randn(37, 16, dtype=torch.float64, requires_grad=True)
    w = torch.randn(50, 16, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, 50, (37,))
    t[[3, 20, 36]] = -100
    ref = F.cross_entropy(h @ w.t(), t, ignore_index=-100)
    (ref * 3).backward()
    gh, gw = h.grad.clone(), w.grad.clone()
    h.grad = w.grad = None
    old = gptbigcode.CHUNK_ROWS
    try:
        gptbigcode.CHUNK_ROWS = 10
        out = gptbigcode.LinearCrossEntropy.apply(h, w, t, 34, gptbigcode._ce_chunk, True)
    finally:
        gptbigcode.CHUNK_ROWS = old
    (out * 3).backward()  # a scalar upstream gradient scales both gradients
    assert out.item() == pytest.approx(ref.item(), rel=1e-12)
    assert torch.allclose(h.grad, gh, rtol=1e-10, atol=1e-12)
    assert torch.allclose(w.grad, gw, rtol=1e-10, atol=1e-12)


def test_no_grad_loss_and_transformers_calls_unchanged():
    ref, fast = pair()
    ref.eval(), fast.eval()
    ids = torch.randint(0, 300, (2, 30))
    with torch.no_grad():
        a = ref(input_ids=ids, labels=ids).loss
        b = lm_loss(fast, ids)  # the eval path of the training loop
        logits = fast(input_ids=ids).logits  # any other call is transformers' forward
    assert b.item() == pytest.approx(a.item(), rel=1e-6)
    assert torch.equal(logits, ref(input_ids=ids).logits)
    assert list(fast.state_dict()) == list(ref.state_dict())
    assert gptbigcode.installed(fast) and not gptbigcode.installed(ref)


def test_setup_forward_applies_only_where_it_can():
    model = tiny()
    assert setup_forward(copy.deepcopy(model), TrainConfig(fast_forward=False)) == "fast_forward is off"
    assert "FSDP" in setup_forward(copy.deepcopy(model), TrainConfig(distributed="fsdp"))
    assert "checkpointing" in setup_forward(copy.deepcopy(model), TrainConfig(gradient_checkpointing=True))
    other = types.SimpleNamespace(config=types.SimpleNamespace(model_type="llama"))
    assert "llama" in setup_forward(other, TrainConfig())
    assert setup_forward(model, TrainConfig()) is None and gptbigcode.installed(model)


def test_clipping_inside_fused_adamw_equals_clip_grad_norm():
    from accelerate import Accelerator

    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 4))
    b = copy.deepcopy(a)
    opt_a = torch.optim.AdamW(a.parameters(), lr=1e-2, weight_decay=0.01, fused=True)
    opt_b = torch.optim.AdamW(b.parameters(), lr=1e-2, weight_decay=0.01, fused=True)
    accelerator = Accelerator(cpu=True)
    for step in range(6):
        x = torch.randn(8, 16) * (10 if step % 2 else 0.01)  # clipped and unclipped steps
        for m in (a, b):
            m.zero_grad()
            (m(x) ** 2).mean().backward()
        norm_a = torch.nn.utils.clip_grad_norm_(a.parameters(), 0.5)
        opt_a.step()
        norm_b = clip_grad_norm(b, opt_b, accelerator, 0.5)
        opt_b.step()
        assert norm_b.item() == pytest.approx(norm_a.item(), rel=1e-6)
        for p, q in zip(a.parameters(), b.parameters()):
            assert torch.allclose(p, q, rtol=1e-6, atol=1e-7)
