"""The keyed Gumbel noise of seeds.py, computed in int32 and only where it is needed.

`seeds.gumbel_noise` holds 32-bit hash values in int64 tensors and masks after every product.
Here the same lowbias32 hash runs on int32 tensors: products wrap modulo 2**32 by themselves,
constants above 2**31 are written as their negative int32 equivalents, and right shifts (which
are arithmetic on int32) are masked to be logical. Every bit, hence every noise value, is equal
to seeds.gumbel_noise (tests/unit/generation/test_fast_sampling.py), at half the memory traffic.
`gumbel_noise_at` computes the noise for given token ids only (the top-p candidates).
"""

from __future__ import annotations

from multiplt.generation.seeds import MASK32, _mix32

_C1 = 0x7FEB352D
_C2 = 0x846CA68B - (1 << 32)
_CTOK = 0x85EBCA77 - (1 << 32)


def _mix32_i32(x):
    x = x ^ ((x >> 16) & 0xFFFF)
    x = x * _C1
    x = x ^ ((x >> 15) & 0x1FFFF)
    x = x * _C2
    return x ^ ((x >> 16) & 0xFFFF)


def _to_i32(x):
    """int64 tensor of values in [0, 2**32) -> int32 tensor with the same low 32 bits."""
    import torch

    return torch.where(x >= (1 << 31), x - (1 << 32), x).to(torch.int32)


def _row_keys(row_seeds, step):
    """`step` is the decoding step of every row (an int) or of each row (an int64 tensor [B],
    for continuous batching, where rows are at different steps): same keys either way."""
    import torch

    if isinstance(step, int):
        step_key = _mix32((step * 0x9E3779B9 + 0x632BE5AB) & MASK32)
    else:
        step_key = _mix32((step.to(torch.int64) * 0x9E3779B9 + 0x632BE5AB) & MASK32)
    return _to_i32(_mix32((row_seeds.to(torch.int64) ^ step_key) & MASK32))  # [B] int32


def gumbel_noise_at(row_seeds, step, token_ids):
    """Noise of seeds.gumbel_noise(row_seeds, step, V)[b, token_ids[b, j]] as a [B, K] float32
    tensor; token_ids is [B, K] (or [K], shared by all rows)."""
    import torch

    row_key = _row_keys(row_seeds, step)[:, None]
    tokens = token_ids.to(torch.int32) * _CTOK
    if tokens.dim() == 1:
        tokens = tokens[None, :]
    bits = _mix32_i32(_mix32_i32(row_key + tokens) ^ row_key)
    u = (((bits >> 9) & 0x7FFFFF).to(torch.float32) + 0.5) / float(1 << 23)
    return -torch.log(-torch.log(u))


def gumbel_noise32(row_seeds, step, vocab: int):
    """seeds.gumbel_noise(row_seeds, step, vocab), computed in int32."""
    import torch

    tokens = torch.arange(vocab, dtype=torch.int32, device=row_seeds.device)
    return gumbel_noise_at(row_seeds, step, tokens)
