"""Triton kernels for the slot engine's decode step on the GPU (static_kv.py, sampler.py).

Why (bench/results/generate_throughput.notes.md): at 640 slots of the StarCoderBase-1B shape a
decode iteration spent about 2 ms in attention and 0.6 ms in the sampler's float64 normalizer,
against 2.3 ms for all the step's matmuls. Measured on an H100 with these kernels: one layer's
decode attention 0.089 -> 0.039 ms (640 rows at 256 positions of a 512 bucket), the normalizer
0.60 -> 0.07 ms, forced-length generation 76,530 -> 102,446 tokens/s.

- `mqa_decode`: one decode query per slot, multi-query (one KV head shared by the H query
  heads). SDPA over the slots reads every slot's keys up to the longest live row (the key-length
  bucket of the captured graph) and an additive mask of that width; this kernel reads each
  slot's own keys and values only, 0..length-1, once, for all H heads at a time (the H queries
  of a slot are one [H, D] tile against each [BLOCK_N, D] key tile). Online softmax in float32
  (as flash attention does); the probabilities are rounded to the cache's dtype for the product
  with the values. One program per slot: cutting a slot's keys into chunks run by separate
  programs (combined by their log-sum-exp) was measured slower, or equal within noise, at every
  slot count tried, 1 to 256 and 640 (H100, bench/results/generate_throughput.notes.md).
- `exp_sum64`: the sampler's normalizer, the float64 sum over the vocabulary of exp(x - top),
  in one pass over the float32 logits instead of four passes over a float64 copy.

Only where `available()`: a CUDA GPU of compute capability 8.0 or later, Triton installed (it
comes with PyTorch's CUDA builds) and able to build and launch a kernel there (a probe launch on
first use: Triton compiles a C launcher, so a host without a C compiler keeps the torch paths);
attention only in bf16/fp16 (float32 keeps SDPA: tl.dot would round it to tf32), and in
static_kv only for power-of-two head counts >= 16 and head sizes >= 16. `TRITON_INTERPRET=1`
runs both kernels on CPU tensors, except bf16 attention, which the interpreter's tl.dot gets
wrong (tests/unit/generation/test_decode_kernels.py).
"""

from __future__ import annotations

import contextlib
import functools
import logging

log = logging.getLogger(__name__)

# The slot engine and the sampler use the kernels where available (bench/generate_throughput.py
# --kernels off and bench/profile_slots.py measure the engine without them).
ENABLED = True
BLOCK_N = 64  # key positions per tile
HALF_DTYPES = ("torch.bfloat16", "torch.float16")  # str(dtype): no torch import at module load


@functools.lru_cache(maxsize=None)
def _triton():
    try:
        import triton
        import triton.language as tl
    except (ImportError, OSError, RuntimeError):  # missing, or an install that cannot load: torch paths
        return None
    return triton, tl


def available(device, dtype=None) -> bool:
    """The kernels serve tensors on `device` (a CUDA GPU of compute capability 8.0 or later, as
    Triton's bf16 tl.dot needs; Triton importable); with `dtype`, attention of that dtype
    (bf16/fp16)."""
    if not ENABLED or device.type != "cuda" or (dtype is not None and str(dtype) not in HALF_DTYPES):
        return False
    return _capable(device.index) and _triton() is not None and _launches(device.index)


@functools.lru_cache(maxsize=None)
def _capable(index) -> bool:
    import torch

    return torch.cuda.get_device_capability(index) >= (8, 0)


@functools.lru_cache(maxsize=None)
def _launches(index) -> bool:
    """Whether a kernel builds and runs on GPU `index`: Triton compiles a C launcher at the first
    launch (it needs a C compiler and Python's headers) and caches kernels under ~/.triton. Once
    per process; where it fails the torch paths are used, with one warning."""
    import torch

    try:
        x = torch.zeros((1, 8), device=torch.device("cuda", index))
        ok = float(exp_sum64(x, torch.zeros((1, 1), dtype=torch.float64, device=x.device))) == 8.0
    except Exception as err:  # noqa: BLE001 - any failure means: do not use the kernels here
        log.warning("Triton decode kernels unusable on this host, using the torch paths: %s", err)
        return False
    if not ok:
        log.warning("Triton decode kernels gave a wrong sum in their probe, using the torch paths")
    return ok


@functools.lru_cache(maxsize=None)
def _kernels():
    found = _triton()
    if found is None:
        raise RuntimeError("the decode kernels need Triton (it comes with PyTorch's CUDA builds)")
    triton, tl = found

    @triton.jit
    def mqa_decode_kernel(q_ptr, k_ptr, v_ptr, len_ptr, o_ptr, stride_qr, stride_qh, stride_kr, stride_kn,
                          stride_vr, stride_vn, stride_or, stride_oh, scale,
                          H: tl.constexpr, D: tl.constexpr, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)  # 64-bit offsets: a layer's cache can pass 2**31 elements
        length = tl.load(len_ptr + row)
        heads = tl.arange(0, H)
        dims = tl.arange(0, D)
        q = tl.load(q_ptr + row * stride_qr + heads[:, None] * stride_qh + dims[None, :])
        m = tl.full([H], float("-inf"), tl.float32)  # running max and sum of each head's softmax
        denom = tl.zeros([H], tl.float32)
        acc = tl.zeros([H, D], tl.float32)
        n0 = 0
        while n0 < length:  # (a while loop: the interpreter's range() cannot take tensor bounds)
            cols = n0 + tl.arange(0, BLOCK)
            inside = cols < length
            k = tl.load(k_ptr + row * stride_kr + cols[:, None] * stride_kn + dims[None, :],
                        mask=inside[:, None], other=0.0)
            s = tl.dot(q, tl.trans(k)) * scale  # [H, BLOCK], float32
            s = tl.where(inside[None, :], s, float("-inf"))
            m_new = tl.maximum(m, tl.max(s, 1))
            alpha = tl.exp(m - m_new)
            p = tl.exp(s - m_new[:, None])
            denom = denom * alpha + tl.sum(p, 1)
            v = tl.load(v_ptr + row * stride_vr + cols[:, None] * stride_vn + dims[None, :],
                        mask=inside[:, None], other=0.0)
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
            m = m_new
            n0 += BLOCK
        out = o_ptr + row * stride_or + heads[:, None] * stride_oh + dims[None, :]
        tl.store(out, (acc / denom[:, None]).to(o_ptr.dtype.element_ty))

    @triton.jit
    def exp_sum64_kernel(x_ptr, top_ptr, out_ptr, vocab, stride_x, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        top = tl.load(top_ptr + row)
        total = tl.zeros([BLOCK], tl.float64)
        c0 = 0
        while c0 < vocab:
            cols = c0 + tl.arange(0, BLOCK)
            x = tl.load(x_ptr + row * stride_x + cols, mask=cols < vocab, other=float("-inf"))
            total += tl.exp(x.to(tl.float64) - top)
            c0 += BLOCK
        tl.store(out_ptr + row, tl.sum(total, 0))

    return mqa_decode_kernel, exp_sum64_kernel


def mqa_decode(q, keys, values, lengths, scale: float, block_n: int = BLOCK_N, num_warps: int = 4):
    """Attention of each row's H queries to its own keys/values 0..lengths[r]-1.

    q: [R, H, D] (H and D powers of two, H >= 16 for tl.dot); keys, values: [R, C, D] with unit
    stride in D (a layer's slice of the cache); lengths: [R] int, 1..C. `block_n`, `num_warps`:
    the tile and launch shape (64 and 4 were the fastest of 32-128 x 2-8 in
    bench/profile_slots.py). Returns [R, H, D] in q's dtype."""
    import torch

    rows, heads, dim = q.shape
    if q.stride(2) != 1 or keys.stride(2) != 1 or values.stride(2) != 1:
        raise ValueError("mqa_decode needs unit stride in the head dimension")
    out = torch.empty_like(q)
    with _on(q.device):
        _kernels()[0][(rows,)](q, keys, values, lengths, out, q.stride(0), q.stride(1), keys.stride(0),
                               keys.stride(1), values.stride(0), values.stride(1), out.stride(0), out.stride(1),
                               scale, H=heads, D=dim, BLOCK=block_n, num_warps=num_warps)
    return out


def exp_sum64(x, top):
    """float64 [B, 1]: the sum over the last dimension of exp(x - top), x float32 [B, V] (unit
    stride in V), top float64 [B, 1]."""
    import torch

    rows, vocab = x.shape
    if x.stride(1) != 1:
        x = x.contiguous()
    out = torch.empty((rows, 1), dtype=torch.float64, device=x.device)
    with _on(x.device):
        _kernels()[1][(rows,)](x, top.contiguous(), out, vocab, x.stride(0), BLOCK=1024)
    return out


def _on(device):
    """Triton launches on the current CUDA device: make it the tensors' own (the interpreter's CPU
    tensors need nothing)."""
    import torch

    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()
