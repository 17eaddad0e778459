"""Triton kernels for the slot engine's decode step on the GPU (static_kv.py, sampler.py).

Why (bench/results/generate_throughput.notes.md): at 640 slots of the StarCoderBase-1B shape a
decode iteration spent about 2 ms in attention and 0.4 ms in the sampler's float64 normalizer,
against 2.3 ms for all the step's matmuls.

- `mqa_decode`: one decode query per slot, multi-query (one KV head shared by the H query
  heads). SDPA over the slots reads every slot's keys up to the longest live row (the key-length
  bucket of the captured graph) and an additive mask of that width; this kernel reads each
  slot's own keys and values only, 0..length-1, once, for all H heads at a time (the H queries
  of a slot are one [H, D] tile against each [BLOCK_N, D] key tile). Online softmax in float32
  (as flash attention does); the probabilities are rounded to the cache's dtype for the product
  with the values. With few slots, each slot's keys are cut into `splits` chunks run by separate
  programs and combined by their log-sum-exp, so that the GPU has enough programs to run.
- `exp_sum64`: the sampler's normalizer, the float64 sum over the vocabulary of exp(x - top),
  in one pass over the float32 logits instead of four passes over a float64 copy.

Only for CUDA tensors in half precision (float32 keeps SDPA: tl.dot would round it to tf32), and
only where Triton is installed (it comes with PyTorch's CUDA builds). `TRITON_INTERPRET=1` runs
both kernels on CPU tensors (tests/unit/generation/test_decode_kernels.py).
"""

from __future__ import annotations

import functools

# The slot engine and the sampler use the kernels where available when on. Off until they are
# measured on a GPU (bench/generate_throughput.py --kernels and bench/profile_slots.py time them
# on and off in one run); so far they have run in Triton's interpreter only.
ENABLED = False
BLOCK_N = 64  # key positions per tile
SPLIT_PROGRAMS = 2  # aim for this many programs per multiprocessor when slots are few
_HALF = ("torch.bfloat16", "torch.float16")


@functools.lru_cache(maxsize=None)
def _triton():
    try:
        import triton
        import triton.language as tl
    except ImportError:
        return None
    return triton, tl


def available(device, dtype=None) -> bool:
    """The kernels serve tensors on `device` (CUDA, Triton importable); with `dtype`, attention
    of that dtype (bf16/fp16)."""
    if not ENABLED or device.type != "cuda" or (dtype is not None and str(dtype) not in _HALF):
        return False
    return _triton() is not None


def splits_for(rows: int, device) -> int:
    """Programs per slot: 1 when the slots alone fill the GPU, more for few slots (at most 8)."""
    import torch

    if device.type != "cuda":
        return 1
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    return max(1, min(8, -(-SPLIT_PROGRAMS * sms // max(1, rows))))


@functools.lru_cache(maxsize=None)
def _kernels():
    found = _triton()
    if found is None:
        raise RuntimeError("the decode kernels need Triton (it comes with PyTorch's CUDA builds)")
    triton, tl = found

    @triton.jit
    def mqa_decode_kernel(q_ptr, k_ptr, v_ptr, len_ptr, o_ptr, m_ptr, l_ptr,
                          stride_qr, stride_qh, stride_kr, stride_kn, stride_vr, stride_vn,
                          stride_or, stride_os, stride_oh, chunk, scale,
                          H: tl.constexpr, D: tl.constexpr, BLOCK: tl.constexpr,
                          PARTIAL: tl.constexpr):
        row = tl.program_id(0)
        split = tl.program_id(1)
        length = tl.load(len_ptr + row)
        start = split * chunk
        end = tl.minimum(length, start + chunk)
        heads = tl.arange(0, H)
        dims = tl.arange(0, D)
        q = tl.load(q_ptr + row * stride_qr + heads[:, None] * stride_qh + dims[None, :])
        m = tl.full([H], float("-inf"), tl.float32)
        denom = tl.zeros([H], tl.float32)
        acc = tl.zeros([H, D], tl.float32)
        n0 = start
        while n0 < end:  # (a while loop: the interpreter's range() cannot take tensor bounds)
            cols = n0 + tl.arange(0, BLOCK)
            inside = cols < end
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
        out = o_ptr + row * stride_or + split * stride_os + heads[:, None] * stride_oh + dims[None, :]
        if PARTIAL:  # unnormalized, with the running max and sum: combined afterwards
            tl.store(out, acc)
            tl.store(m_ptr + (row * tl.num_programs(1) + split) * H + heads, m)
            tl.store(l_ptr + (row * tl.num_programs(1) + split) * H + heads, denom)
        else:
            tl.store(out, (acc / denom[:, None]).to(o_ptr.dtype.element_ty))

    @triton.jit
    def exp_sum64_kernel(x_ptr, top_ptr, out_ptr, vocab, stride_x, BLOCK: tl.constexpr):
        row = tl.program_id(0)
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


def mqa_decode(q, keys, values, lengths, scale: float, splits: int = 1, chunk: int | None = None,
               block_n: int = BLOCK_N, num_warps: int = 4):
    """Attention of each row's H queries to its own keys/values 0..lengths[r]-1.

    q: [R, H, D] (H and D powers of two, H >= 16 for tl.dot); keys, values: [R, C, D] with unit
    stride in D (a layer's slice of the cache); lengths: [R] int, 1..C. `chunk`: key positions
    per split (rounded up to a multiple of `block_n`; it must cover the longest row with
    `splits` chunks). `block_n`, `num_warps`: the tile and launch shape (bench/profile_slots.py
    measures others). Returns [R, H, D] in q's dtype."""
    import torch

    rows, heads, dim = q.shape
    kernel = _kernels()[0]
    if q.stride(2) != 1 or keys.stride(2) != 1 or values.stride(2) != 1:
        raise ValueError("mqa_decode needs unit stride in the head dimension")
    if chunk is None:
        chunk = -(-keys.shape[1] // splits)
    chunk = -(-chunk // block_n) * block_n
    args = (q.stride(0), q.stride(1), keys.stride(0), keys.stride(1), values.stride(0), values.stride(1))
    if splits == 1:
        out = torch.empty_like(q)
        kernel[(rows, 1)](q, keys, values, lengths, out, out, out, *args,
                          out.stride(0), 0, out.stride(1), chunk, scale,
                          H=heads, D=dim, BLOCK=block_n, PARTIAL=False, num_warps=num_warps)
        return out
    part = torch.empty((rows, splits, heads, dim), dtype=torch.float32, device=q.device)
    m = torch.empty((rows, splits, heads), dtype=torch.float32, device=q.device)
    denom = torch.empty_like(m)
    kernel[(rows, splits)](q, keys, values, lengths, part, m, denom, *args,
                           part.stride(0), part.stride(1), part.stride(2), chunk, scale,
                           H=heads, D=dim, BLOCK=block_n, PARTIAL=True, num_warps=num_warps)
    # a split past the row's length has max -inf and sum 0: its weight is exp(-inf) = 0
    top = m.amax(1, keepdim=True)  # split 0 always holds position 0: finite
    weight = torch.exp(m - top)
    out = (part * weight[..., None]).sum(1) / (denom * weight).sum(1)[..., None]
    return out.to(q.dtype)


def exp_sum64(x, top):
    """float64 [B, 1]: the sum over the last dimension of exp(x - top), x float32 [B, V] (unit
    stride in V), top float64 [B, 1]."""
    import torch

    rows, vocab = x.shape
    if x.stride(1) != 1:
        x = x.contiguous()
    out = torch.empty((rows, 1), dtype=torch.float64, device=x.device)
    _kernels()[1][(rows,)](x, top.contiguous(), out, vocab, x.stride(0), BLOCK=1024)
    return out
