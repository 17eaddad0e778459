"""A training forward for GPTBigCode (StarCoder) models that is cheaper on a GPU than transformers'
own, with the same math on the same parameters.

`install(model)` gives a `GPTBigCodeForCausalLM` one more way to be called,
`model(input_ids=batch, multiplt_loss=True)`, which returns the mean next-token loss (what
`model(input_ids=batch, labels=batch).loss` returns). Every other call goes to transformers'
forward unchanged, and nothing is added to or renamed in the model: its state dict, checkpoints
and `from_pretrained` stay exactly transformers'. Because it is a call of the model, DDP's
gradient hooks and accelerate's autocast wrap it as they wrap the ordinary forward. What differs:

- no host synchronisation per forward (transformers' mask code checks the position ids for packed
  sequences with a `.all()` that waits for the GPU every step);
- each transformer block is one function of its tensors, compiled once (`compile=True`) for all
  layers: LayerNorm, bias, GELU, dropout and residual adds fuse around the matmuls and attention;
  each function ends with the next block's ln_1 (ln_f after the last), so the last residual add
  and that LayerNorm are one kernel in both directions;
- the LM head and the cross-entropy are one autograd function that works through the tokens in
  chunks of up to CHUNK_ROWS (8 x 2048 tokens are one chunk: 1.6 GB of bf16 logits for
  StarCoderBase): the fp32 copy accelerate makes of a model's outputs (3.2 GB) never exists, and
  the gradient of each chunk's logits is made in the same pass that computes its loss.

The numerics are those of transformers' forward on the same parameters under the same autocast
(precision bf16-mixed: LayerNorm and residual stream in fp32, matmuls and attention in bf16; with
bf16-master's bf16 parameters everything but the LayerNorm/softmax/loss math is bf16), the loss in
fp32, dropout as configured (the same random draws in the same order, so on a CPU the loss equals
transformers' bit for bit or nearly). tests/unit/training/test_gptbigcode.py compares
losses and gradients.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F

# Rows of the LM head's output computed at once: 16384 x 49152 bf16 = 1.6 GB for StarCoderBase
# (one chunk for a 16k-token micro-batch: the logits and their gradient once, instead of the
# logits, accelerate's 3.2 GB fp32 copy and their gradients; larger micro-batches are chunked).
CHUNK_ROWS = 16384


def unsupported(model) -> str | None:
    """Why `install` cannot serve `model` (None if it can)."""
    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) != "gpt_bigcode":
        return f"model type {getattr(config, 'model_type', type(model).__name__)} is not gpt_bigcode"
    if getattr(config, "add_cross_attention", False):
        return "cross-attention is not supported"
    if not hasattr(model, "transformer") or not hasattr(model, "lm_head"):
        return "not a GPTBigCodeForCausalLM"
    if getattr(model.lm_head, "bias", None) is not None:
        return "an LM head with a bias is not supported"
    return None


# torch.compile mode / inductor options for the block function (None = the defaults; the
# benchmark also tries mode "max-autotune-no-cudagraphs", which may pick Triton matmuls with fused
# epilogues, and the option coordinate_descent_tuning, which tunes the elementwise kernels).
COMPILE_MODE = None
COMPILE_OPTIONS = None


def install(model, compile: bool = False, attention: str = "gqa") -> None:
    """Add the fast loss path to `model` (a transformers GPTBigCodeForCausalLM, before
    accelerate/DDP wrap it). `attention`: "gqa" passes the single key/value head of multi-query
    attention to SDPA as is (enable_gqa), "expand" repeats it over the query heads first (for SDPA
    kernels without grouped-query support)."""
    reason = unsupported(model)
    if reason:
        raise ValueError(f"fast GPTBigCode forward: {reason}")
    if attention not in ("gqa", "expand"):
        raise ValueError(f"attention must be gqa or expand, not {attention!r}")
    config = model.config
    block = _make_block(config, model.transformer.h[0].mlp.act, attention)
    embed = _embed
    ce = _ce_chunk
    if compile:
        block = torch.compile(block, dynamic=False, fullgraph=True, mode=COMPILE_MODE, options=COMPILE_OPTIONS)
        embed = torch.compile(_embed, dynamic=False, fullgraph=True)
        ce = torch.compile(_ce_chunk, dynamic=False, fullgraph=True)
    model._multiplt_fns = (embed, block, ce)
    if not hasattr(model, "_multiplt_hf_forward"):
        model._multiplt_hf_forward = model.forward
    model.forward = types.MethodType(_forward, model)
    model.multiplt_fast_loss = True


def installed(model) -> bool:
    """Whether `model` (possibly wrapped by DDP or torch.compile) has the fast loss path."""
    inner = getattr(model, "module", model)
    inner = getattr(inner, "_orig_mod", inner)
    return bool(getattr(inner, "multiplt_fast_loss", False))


def _forward(self, input_ids=None, *args, multiplt_loss: bool = False, **kwargs):
    if not multiplt_loss:
        return self._multiplt_hf_forward(input_ids, *args, **kwargs)
    if args or kwargs:
        raise TypeError(f"multiplt_loss=True takes only input_ids, not {sorted(kwargs)}")
    return causal_lm_loss(self, input_ids)


def causal_lm_loss(model, input_ids: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of `model` on `input_ids` [batch, seq] (position t predicts
    token t+1), computed with the functions `install` set up."""
    embed, block, ce = model._multiplt_fns
    t = model.transformer
    config = model.config
    training = model.training
    batch, seq = input_ids.shape
    positions = torch.arange(seq, device=input_ids.device)
    # Each function ends with the next LayerNorm (the next block's ln_1, after the last block
    # ln_f), so the residual add and that LayerNorm are one kernel (x is read once less).
    x, h = embed(input_ids, positions, t.wte.weight, t.wpe.weight, config.embd_pdrop if training else 0.0,
                 t.h[0].ln_1.weight, t.h[0].ln_1.bias, config.layer_norm_epsilon)
    for i, layer in enumerate(t.h):
        nxt = t.h[i + 1].ln_1 if i + 1 < len(t.h) else t.ln_f
        x, h = block(x, h, layer.attn.c_attn.weight, layer.attn.c_attn.bias,
                     layer.attn.c_proj.weight, layer.attn.c_proj.bias, layer.ln_2.weight, layer.ln_2.bias,
                     layer.mlp.c_fc.weight, layer.mlp.c_fc.bias, layer.mlp.c_proj.weight, layer.mlp.c_proj.bias,
                     nxt.weight, nxt.bias, training)
    # Targets: the next token; the last position of each sequence has none (ignored, -100).
    targets = torch.cat([input_ids[:, 1:], torch.full_like(input_ids[:, :1], -100)], dim=1)
    weight = model.lm_head.weight
    need_grad = torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad)
    return LinearCrossEntropy.apply(h.flatten(0, 1), weight, targets.flatten(), batch * (seq - 1), ce,
                                    need_grad)


def _embed(input_ids, positions, wte, wpe, p: float, ln_w, ln_b, eps: float):
    """The residual stream's start and the first block's ln_1 of it."""
    x = F.embedding(input_ids, wte) + F.embedding(positions, wpe).unsqueeze(0)
    x = F.dropout(x, p, training=p > 0)
    return x, F.layer_norm(x, (x.shape[-1],), ln_w, ln_b, eps)


def _make_block(config, act, attention: str):
    """One GPTBigCode block as a function of its input x, h = ln_1(x) (made by the function
    before) and its parameters (transformers' GPTBigCodeBlock.forward with the SDPA attention, no
    cache, no mask, causal); returns its output and the next LayerNorm (parameters next_w, next_b)
    of that output."""
    n_head = config.n_head
    embed_dim = config.n_embd
    head_dim = embed_dim // n_head
    multi_query = config.multi_query
    eps = config.layer_norm_epsilon
    scale = head_dim ** -0.5 if config.scale_attn_weights else 1.0
    p_attn, p_resid = config.attn_pdrop, config.resid_pdrop

    def block(x, h, attn_w, attn_b, proj_w, proj_b, ln2_w, ln2_b, fc_w, fc_b, out_w, out_b, next_w, next_b,
              training: bool):
        batch, seq, _ = x.shape
        qkv = F.linear(h, attn_w, attn_b)
        if multi_query:
            q, k, v = qkv.unsqueeze(1).split((embed_dim, head_dim, head_dim), dim=3)
            q = q.view(batch, seq, n_head, head_dim).transpose(1, 2)
            if attention == "expand":
                k, v = k.expand(batch, n_head, seq, head_dim), v.expand(batch, n_head, seq, head_dim)
                gqa = False
            else:
                gqa = True
        else:
            q, k, v = qkv.view(batch, seq, n_head, 3 * head_dim).transpose(1, 2).split(head_dim, dim=3)
            gqa = False
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=p_attn if training else 0.0, is_causal=True,
                                           scale=scale, enable_gqa=gqa)
        a = a.transpose(1, 2).reshape(batch, seq, embed_dim)
        a = F.dropout(F.linear(a, proj_w, proj_b), p_resid, training=training)
        x = a + x
        h = F.layer_norm(x, (embed_dim,), ln2_w, ln2_b, eps)
        h = F.linear(act(F.linear(h, fc_w, fc_b)), out_w, out_b)
        x = x + F.dropout(h, p_resid, training=training)
        return x, F.layer_norm(x, (embed_dim,), next_w, next_b, eps)

    return block


def _ce_chunk(logits: torch.Tensor, targets: torch.Tensor, scale: torch.Tensor):
    """Cross-entropy of one chunk of rows: (sum of the losses of rows with a target >= 0, their
    gradient w.r.t. the logits times `scale`, in the logits' dtype). Math in fp32 (or wider)."""
    lf = logits.to(torch.promote_types(logits.dtype, torch.float32))
    lse = torch.logsumexp(lf, dim=-1)
    valid = targets >= 0
    safe = targets.clamp(min=0)
    picked = lf.gather(1, safe.unsqueeze(1)).squeeze(1)
    loss_sum = torch.where(valid, lse - picked, 0.0).sum()
    probs = torch.exp(lf - lse.unsqueeze(1))
    onehot = torch.arange(lf.shape[1], device=lf.device).unsqueeze(0) == safe.unsqueeze(1)
    grad = (probs - onehot.float()) * torch.where(valid, scale, 0.0).unsqueeze(1)
    return loss_sum, grad.to(logits.dtype)


_FP32_OUT_MATMUL = [True]  # torch.addmm(..., out_dtype=float32) on CUDA (torch >= 2.9), until it fails


def _add_matmul(acc: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """acc (fp32) += a @ b (low precision operands, fp32 accumulation). On CUDA one GEMM that
    adds into `acc` in its epilogue; elsewhere a GEMM, a cast and an add."""
    if acc.is_cuda and a.dtype != acc.dtype and _FP32_OUT_MATMUL[0]:
        try:
            torch.addmm(acc, a, b, out_dtype=acc.dtype, out=acc)
            return
        except (TypeError, RuntimeError, NotImplementedError):
            _FP32_OUT_MATMUL[0] = False
    acc += (a @ b).to(acc.dtype)


class LinearCrossEntropy(torch.autograd.Function):
    """mean over rows with a target of cross_entropy(h @ weight.T, targets), without the whole
    logits: per chunk of rows, the logits, their loss and their gradient are made and the
    gradients of h and weight computed at once (the loss is the graph's end, so the gradient that
    reaches it is a scalar and only scales them in backward). Under autocast the matmuls run in
    the autocast dtype, as an autocast nn.Linear would."""

    @staticmethod
    def forward(ctx, h, weight, targets, n_valid: int, ce, need_grad: bool):
        device = h.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else h.dtype
        ctx.weight_dtype = weight.dtype
        with torch.autocast(device, enabled=False):
            w = weight.to(dtype)
            rows = h.shape[0]
            n_chunks = max(1, -(-rows // CHUNK_ROWS))
            size = -(-rows // n_chunks)
            wide = torch.promote_types(dtype, torch.float32)
            scale = torch.full((), 1.0 / max(n_valid, 1), device=h.device, dtype=wide)
            loss = torch.zeros((), device=h.device, dtype=wide)
            if n_chunks == 1:  # all rows at once: each gradient is one GEMM, written once
                hc = h.to(dtype)
                logits = hc @ w.t()
                loss, grad = ce(logits, targets, scale)
                del logits
                grad_h = grad_w = None
                if need_grad:
                    grad_h = grad @ w
                    # the weight's gradient in its own dtype when that is the compute dtype (bf16
                    # weights: fp32 sums inside the GEMM, rounded once), else fp32
                    grad_w = grad.t() @ hc if weight.dtype == dtype else torch.zeros_like(weight, dtype=wide)
                    if weight.dtype != dtype:
                        _add_matmul(grad_w, grad.t(), hc)
                ctx.grads = (grad_h, grad_w)
                return loss / max(n_valid, 1)
            grad_h = torch.empty_like(h) if need_grad else None
            grad_w = torch.zeros_like(weight, dtype=wide) if need_grad else None
            for start in range(0, rows, size):
                hc = h[start:start + size].to(dtype)
                logits = hc @ w.t()
                loss_sum, grad = ce(logits, targets[start:start + size], scale)
                loss = loss + loss_sum
                if need_grad:
                    grad_h[start:start + size] = grad @ w
                    _add_matmul(grad_w, grad.t(), hc)
        ctx.grads = (grad_h, grad_w)
        return loss / max(n_valid, 1)

    @staticmethod
    def backward(ctx, grad_loss):
        grad_h, grad_w = ctx.grads
        ctx.grads = None
        gh = grad_h * grad_loss.to(grad_h.dtype) if ctx.needs_input_grad[0] else None
        gw = (grad_w * grad_loss).to(ctx.weight_dtype) if ctx.needs_input_grad[1] else None
        return gh, gw, None, None, None, None
