"""Per-sample randomness that does not depend on batching.

Sample i of problem p draws from a seed derived from (run seed, p, i). The sampler turns that
seed into Gumbel noise with a counter-based hash of (sample seed, step, token id), so a sample's
tokens are the same whatever else shares its batch: a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import hashlib

MASK32 = 0xFFFFFFFF


def sample_seed(seed: int, problem: str, index: int) -> int:
    """A 31-bit seed for sample `index` of `problem` in a run with seed `seed`."""
    digest = hashlib.sha256(f"{seed}\x00{problem}\x00{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def _mix32(x):
    """lowbias32 (C. Wellons) on Python ints or int64 tensors holding 32-bit values; exact
    modulo 2**32 even where the int64 products wrap around."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & MASK32
    return x ^ (x >> 16)


def gumbel_noise(row_seeds, step: int, vocab: int):
    """Gumbel(0, 1) noise of shape [len(row_seeds), vocab] (float32), a pure function of each
    row's seed, the decoding step and the token id."""
    import torch

    device = row_seeds.device
    # a Python int: no host-to-device copy, so no implicit sync with the GPU each step
    step_key = _mix32((step * 0x9E3779B9 + 0x632BE5AB) & MASK32)
    row_key = _mix32((row_seeds.to(torch.int64) ^ step_key) & MASK32)  # [B]
    tokens = torch.arange(vocab, dtype=torch.int64, device=device) * 0x85EBCA77 & MASK32  # [V]
    bits = _mix32(_mix32((row_key[:, None] + tokens[None, :]) & MASK32) ^ row_key[:, None])
    # 23 high bits -> uniform in (0, 1), then Gumbel. 23, not 24: (2**24 - 0.5) / 2**24 rounds
    # to 1.0 in float32, whose noise is +inf and would win the argmax whatever the logit (even a
    # token that top-p filtered out or a suppressed EOS); the largest value here, 1 - 2**-24, is
    # exact in float32, so the noise is finite at both ends.
    u = ((bits >> 9).to(torch.float32) + 0.5) / float(1 << 23)
    return -torch.log(-torch.log(u))
