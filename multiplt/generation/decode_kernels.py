"""Triton kernels for the slot engine's decode step on the GPU (static_kv.py, sampler.py).

Why (bench/results/generate_throughput.notes.md): at 640 slots of the StarCoderBase-1B shape a
decode iteration spent about 2 ms in attention and 0.6 ms in the sampler's float64 normalizer,
against 2.3 ms for all the step's matmuls. Measured on an H100 when these kernels came (the
eighth wave-2 session): one layer's decode attention 0.089 -> 0.039 ms (640 rows at 256
positions of a 512 bucket), the normalizer 0.60 -> 0.07 ms; the current record of forced-length
generation with and without them is in bench/results/generate_throughput.json.

- `mqa_decode`: one decode query per slot, multi-query (one KV head shared by the H query
  heads). SDPA over the slots reads every slot's keys up to the longest live row (the key-length
  bucket of the captured graph) and an additive mask of that width; this kernel reads each
  slot's own keys and values only, 0..length-1, once, for all H heads at a time (the H queries
  of a slot are one [H, D] tile against each [BLOCK_N, D] key tile). Online softmax in float32
  (as flash attention does); the probabilities are rounded to the cache's dtype for the product
  with the values. One program per slot: cutting a slot's keys into chunks run by separate
  programs (combined by their log-sum-exp) was measured slower, or equal within noise, at every
  slot count tried, 1 to 256 and 640 (H100, bench/results/generate_throughput.notes.md).
  With the step's new key and value given, the kernel writes them into the cache itself and
  uses them from registers (the fused step has no scatter launches).
- `add_layernorm`: a projection's bias added to the residual stream and the next LayerNorm, in
  one pass (static_kv._forward_fused: the GEMM adds the residual itself, beta = 1).
- `exp_sum64`: the sampler's normalizer, the float64 sum over the vocabulary of exp(x - top),
  in one pass over the logits instead of four passes over a float64 copy; given a scale (the
  reciprocal of the temperature) it reads the half-precision logits as the model gives them and
  multiplies them itself, as torch's CUDA division by a scalar does (sampler._top_k_path_raw).
- `nucleus`: the sampler's top-k path after the top-k (sampler._top_k_path): the float64 mass
  before each candidate, the nucleus edge, the test that the candidates hold the whole nucleus,
  the candidates' keyed Gumbel noise (seeds.py, bit for bit: integer hashing and the CUDA math
  library's logf) and the Gumbel-max, one program per row instead of some 60 small launches.

Only where `available()`: a CUDA GPU of compute capability 8.0 or later, Triton installed (it
comes with PyTorch's CUDA builds) and able to build and launch each kernel there (one small probe
launch of each on first use, checked against known results: Triton compiles a C launcher, so a host
without a C compiler keeps the torch paths, and so does one where any kernel fails to build);
attention only in bf16/fp16 (float32 keeps SDPA: tl.dot would round it to tf32), and in
static_kv only for power-of-two head counts >= 16 and head sizes >= 16. `TRITON_INTERPRET=1`
runs the kernels on CPU tensors, except bf16 attention, which the interpreter's tl.dot gets
wrong, and with numpy's log in place of the CUDA logf (tests/unit/generation/test_decode_kernels.py).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os

log = logging.getLogger(__name__)

# The slot engine and the sampler use the kernels where available (bench/generate_throughput.py
# --kernels off and bench/profile_slots.py measure the engine without them).
ENABLED = True
BLOCK_N = 64  # key positions per tile
NUM_WARPS = 4
NUM_STAGES = 2  # tiles in flight in the attention loop (Triton's software pipelining): 2 was 3-6% faster
# than 3 over 24 graphed layers on an H100 (generate_throughput.notes.md, tenth session)
# A flat work-list attention kernel (a few programs per SM, each through the key tiles of a run
# of whole slots in one pipelined loop) was tried and removed: 0.048 against 0.043 ms a layer,
# 0.96x end to end (H100, generate_throughput.notes.md)
HALF_DTYPES = ("torch.bfloat16", "torch.float16")  # str(dtype): no torch import at module load
_log = _mix32 = _attend_tile = _new_column = _exp_tile = None  # the kernels' helpers, set by _kernels()


@functools.lru_cache(maxsize=None)
def _triton():
    try:
        import triton
        import triton.language as tl
        from triton.language.extra import libdevice
    except (ImportError, OSError, RuntimeError):  # missing, or an install that cannot load: torch paths
        return None
    return triton, tl, libdevice


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
    """Whether every kernel builds and runs on GPU `index`: Triton compiles a C launcher at the
    first launch (it needs a C compiler and Python's headers) and caches kernels under ~/.triton.
    Once per process; where any fails the torch paths are used, with one warning."""
    import torch

    try:
        x = torch.zeros((1, 8), device=torch.device("cuda", index))
        ok = float(exp_sum64(x, torch.zeros((1, 1), dtype=torch.float64, device=x.device))) == 8.0
        ok = ok and _probe_others(x.device)
    except Exception as err:  # noqa: BLE001 - any failure means: do not use the kernels here
        log.warning("Triton decode kernels unusable on this host, using the torch paths: %s", err)
        return False
    if not ok:
        log.warning("Triton decode kernels gave a wrong result in their probe, using the torch paths")
    return ok


def _probe_others(device) -> bool:
    """One small launch of each other kernel (each compiles at its first launch): the nucleus on
    a row whose top token holds the nucleus (from float32 values, and from half-precision logits
    read at the candidates' indices, with the normalizer's variant that does so), a LayerNorm of a
    constant row, one slot's attention to its one new key."""
    import torch

    long = dict(dtype=torch.int64, device=device)
    vals = torch.tensor([[10.0, 0.0, -1.0]], device=device)
    z = torch.exp(vals.double() - 10.0).sum(-1, keepdim=True)
    idx = torch.tensor([[2, 0, 1]], **long)
    token, exact = nucleus(vals, idx, z, torch.zeros(1, **long), torch.zeros(1, **long), 0.5, 1e-9, 3)
    # sampler.FUSED_GATHER's variants: the same row as half-precision logits read at idx
    raw = torch.tensor([[0.0, -1.0, 10.0]], dtype=torch.bfloat16, device=device)
    z_at = exp_sum64(raw, None, 1.0, top_at=idx)
    token_at, exact_at = nucleus(None, idx, z_at, torch.zeros(1, **long), torch.zeros(1, **long), 0.5, 1e-9, 3,
                                 raw, 1.0)
    half = dict(dtype=torch.bfloat16, device=device)
    y = torch.ones((1, 16), **half)
    h = add_layernorm(y, torch.ones(16, **half), torch.ones(16, **half), torch.zeros(16, **half), 1e-5)
    v = torch.ones((1, 16), **half)
    a = mqa_decode(torch.ones((1, 16, 16), **half), torch.zeros((1, 4, 16), **half), torch.zeros((1, 4, 16), **half),
                   torch.ones(1, **long), 0.25, new_k=torch.ones((1, 16), **half), new_v=v)
    return (int(token) == 2 and bool(exact) and abs(float(z_at) - float(z)) < 1e-12 and int(token_at) == 2
            and bool(exact_at) and bool((y == 2).all()) and bool((h == 0).all()) and bool((a == 1).all()))


@functools.lru_cache(maxsize=None)
def _kernels():
    found = _triton()
    if found is None:
        raise RuntimeError("the decode kernels need Triton (it comes with PyTorch's CUDA builds)")
    triton, tl, libdevice = found
    # the kernels' helpers are module globals: the interpreter runs a kernel from its source in
    # the module's globals, without the closure
    global _log, _mix32, _attend_tile, _new_column, _exp_tile
    if os.environ.get("TRITON_INTERPRET") == "1":
        @triton.jit
        def _log(x):  # the interpreter has no libdevice: numpy's float32 log
            return tl.log(x)
    else:
        @triton.jit
        def _log(x):  # __nv_logf, the CUDA math library's logf, as torch.log computes on CUDA
            return libdevice.log(x)

    @triton.jit
    def _mix32(x):  # seeds._mix32 on int64 holding 32-bit values
        x = x ^ (x >> 16)
        x = (x * 0x7FEB352D) & 0xFFFFFFFF
        x = x ^ (x >> 15)
        x = (x * 0x846CA68B) & 0xFFFFFFFF
        return x ^ (x >> 16)

    @triton.jit
    def _attend_tile(q, k_row, v_row, stride_kn, stride_vn, n0, cached, dims, scale, m, denom, acc,
                     BLOCK: tl.constexpr):
        """One tile of BLOCK cached positions into the online softmax (m, denom, acc)."""
        cols = n0 + tl.arange(0, BLOCK)
        inside = cols < cached
        k = tl.load(k_row + cols[:, None] * stride_kn + dims[None, :], mask=inside[:, None], other=0.0)
        s = tl.dot(q, tl.trans(k)) * scale  # [H, BLOCK], float32
        s = tl.where(inside[None, :], s, float("-inf"))
        m_new = tl.maximum(m, tl.max(s, 1))
        alpha = tl.exp(m - m_new)
        p = tl.exp(s - m_new[:, None])
        denom = denom * alpha + tl.sum(p, 1)
        v = tl.load(v_row + cols[:, None] * stride_vn + dims[None, :], mask=inside[:, None], other=0.0)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        return m_new, denom, acc

    @triton.jit
    def _new_column(q, k_new, v_new, scale, m, denom, acc):
        """The step's own key and value, from registers, as one more column of the online softmax
        (m, denom, acc); returns (denom, acc) (m is not needed after it)."""
        s = tl.sum(q.to(tl.float32) * k_new.to(tl.float32)[None, :], 1) * scale  # [H]
        m_new = tl.maximum(m, s)
        alpha = tl.exp(m - m_new)
        p = tl.exp(s - m_new)
        denom = denom * alpha + p
        acc = acc * alpha[:, None] + p.to(v_new.dtype).to(tl.float32)[:, None] * v_new.to(tl.float32)[None, :]
        return denom, acc

    @triton.jit
    def mqa_decode_kernel(q_ptr, k_ptr, v_ptr, len_ptr, o_ptr, nk_ptr, nv_ptr, stride_qr, stride_qh, stride_kr,
                          stride_kn, stride_vr, stride_vn, stride_or, stride_oh, stride_nk, stride_nv, scale,
                          H: tl.constexpr, D: tl.constexpr, BLOCK: tl.constexpr, NEW: tl.constexpr,
                          LOOP_FOR: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)  # 64-bit offsets: a layer's cache can pass 2**31 elements
        length = tl.load(len_ptr + row)
        heads = tl.arange(0, H)
        dims = tl.arange(0, D)
        q = tl.load(q_ptr + row * stride_qr + heads[:, None] * stride_qh + dims[None, :])
        m = tl.full([H], float("-inf"), tl.float32)  # running max and sum of each head's softmax
        denom = tl.zeros([H], tl.float32)
        acc = tl.zeros([H, D], tl.float32)
        cached = length
        if NEW:  # this step's key and value: into the cache at length - 1, used from registers
            cached = length - 1
            k_new = tl.load(nk_ptr + row * stride_nk + dims)
            v_new = tl.load(nv_ptr + row * stride_nv + dims)
            tl.store(k_ptr + row * stride_kr + cached * stride_kn + dims, k_new)
            tl.store(v_ptr + row * stride_vr + cached * stride_vn + dims, v_new)
        k_row, v_row = k_ptr + row * stride_kr, v_ptr + row * stride_vr
        if LOOP_FOR:  # compiled: a for loop, which Triton software-pipelines (the next tile's loads
            # are issued while this one is computed; num_stages deep)
            for n0 in range(0, cached, BLOCK):
                m, denom, acc = _attend_tile(q, k_row, v_row, stride_kn, stride_vn, n0, cached, dims, scale,
                                             m, denom, acc, BLOCK)
        else:  # the interpreter's range() cannot take a tensor bound
            n0 = 0
            while n0 < cached:
                m, denom, acc = _attend_tile(q, k_row, v_row, stride_kn, stride_vn, n0, cached, dims, scale,
                                             m, denom, acc, BLOCK)
                n0 += BLOCK
        if NEW:  # the last position, as one more column of the online softmax
            denom, acc = _new_column(q, k_new, v_new, scale, m, denom, acc)
        out = o_ptr + row * stride_or + heads[:, None] * stride_oh + dims[None, :]
        tl.store(out, (acc / denom[:, None]).to(o_ptr.dtype.element_ty))

    @triton.jit
    def _exp_tile(x_ptr, row, stride_x, c0, vocab, scale, top, total, BLOCK: tl.constexpr, SCALED: tl.constexpr):
        cols = c0 + tl.arange(0, BLOCK)
        x = tl.load(x_ptr + row * stride_x + cols, mask=cols < vocab, other=float("-inf")).to(tl.float32)
        if SCALED:  # float32(logit) * scale, rounded once: torch's CUDA division by a scalar
            x = x * scale
        return total + tl.exp(x.to(tl.float64) - top)

    @triton.jit
    def exp_sum64_kernel(x_ptr, top_ptr, out_ptr, vocab, stride_x, scale, idx_ptr, stride_idx, BLOCK: tl.constexpr,
                         SCALED: tl.constexpr, TOP_AT: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        if TOP_AT:  # the row's largest x: the logit at the top-k's first index, times scale
            first = tl.load(idx_ptr + row * stride_idx)
            top = (tl.load(x_ptr + row * stride_x + first).to(tl.float32) * scale).to(tl.float64)
        else:
            top = tl.load(top_ptr + row)
        total = tl.zeros([BLOCK], tl.float64)
        c0 = 0
        while c0 < vocab:
            total = _exp_tile(x_ptr, row, stride_x, c0, vocab, scale, top, total, BLOCK, SCALED)
            c0 += BLOCK
        tl.store(out_ptr + row, tl.sum(total, 0))

    @triton.jit
    def add_layernorm_kernel(y_ptr, bias_ptr, w_ptr, b_ptr, h_ptr, n, eps, stride_y, stride_h,
                             BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        cols = tl.arange(0, BLOCK)
        inside = cols < n
        at = y_ptr + row * stride_y + cols
        y = tl.load(at, mask=inside, other=0.0)
        # the residual stream as the module path keeps it: rounded to the model's dtype
        x = (y.to(tl.float32) + tl.load(bias_ptr + cols, mask=inside, other=0.0).to(tl.float32)).to(y.dtype)
        tl.store(at, x, mask=inside)
        xf = x.to(tl.float32)
        mean = tl.sum(xf, 0) / n
        d = tl.where(inside, xf - mean, 0.0)
        rstd = 1.0 / tl.sqrt(tl.sum(d * d, 0) / n + eps)
        w = tl.load(w_ptr + cols, mask=inside, other=0.0).to(tl.float32)
        b = tl.load(b_ptr + cols, mask=inside, other=0.0).to(tl.float32)
        tl.store(h_ptr + row * stride_h + cols, (d * rstd * w + b).to(h_ptr.dtype.element_ty), mask=inside)

    @triton.jit
    def nucleus_kernel(vals_ptr, idx_ptr, z_ptr, seed_ptr, step_ptr, tok_ptr, exact_ptr, k, vocab,
                       stride_vals, stride_idx, scale, TOP_P: tl.constexpr, MARGIN: tl.constexpr, HIGH: tl.constexpr,
                       BLOCK: tl.constexpr, RAW: tl.constexpr):
        # float64 constants: a float argument or literal would be float32 here (0.95 -> 0.949999988),
        # and a mass before a candidate between the two would be judged otherwise than the reference
        top_p = tl.full([], TOP_P, tl.float64)
        margin = tl.full([], MARGIN, tl.float64)
        high = tl.full([], HIGH, tl.float64)  # top_p + margin, added in Python's double as the reference does
        row = tl.program_id(0).to(tl.int64)
        j = tl.arange(0, BLOCK)
        cand = j < k  # the k candidates; position k is the first token left out
        if RAW:  # vals_ptr: the half-precision logits; each candidate's x = float32(logit) * scale
            # (torch's CUDA division by the temperature), read through the top-k's indices
            at = tl.load(idx_ptr + row * stride_idx + j, mask=j <= k, other=0)
            vals = tl.where(j <= k, tl.load(vals_ptr + row * stride_vals + at).to(tl.float32) * scale, float("-inf"))
            at = tl.load(idx_ptr + row * stride_idx + j - 1, mask=(j >= 1) & (j <= k), other=0)
            prev = tl.where((j >= 1) & (j <= k), tl.load(vals_ptr + row * stride_vals + at).to(tl.float32) * scale,
                            float("-inf"))
            top = (tl.load(vals_ptr + row * stride_vals + tl.load(idx_ptr + row * stride_idx)).to(tl.float32)
                   * scale).to(tl.float64)
        else:
            vals = tl.load(vals_ptr + row * stride_vals + j, mask=j <= k, other=float("-inf"))
            prev = tl.load(vals_ptr + row * stride_vals + j - 1, mask=(j >= 1) & (j <= k), other=float("-inf"))
            top = tl.load(vals_ptr + row * stride_vals).to(tl.float64)
        z = tl.load(z_ptr + row)
        # the float64 mass before each position: an exclusive running sum (sampler._mass_before)
        before = tl.cumsum(tl.exp(prev.to(tl.float64) - top), 0) / z
        kept = cand & (before <= top_p)  # a prefix: the masses do not decrease
        edge = tl.min(tl.where(kept, vals, float("inf")), 0)  # the smallest logit top-p keeps
        left_out = tl.max(tl.where(j == k, vals, float("-inf")), 0)
        mass_k = tl.max(tl.where(j == k, before, float("-inf")), 0)
        near = tl.max(tl.where(cand & (tl.abs(before - top_p) <= margin), 1, 0), 0)
        exact = (mass_k > high) & (near == 0) & (edge > left_out)
        # the keyed Gumbel noise of the candidates (seeds.gumbel_noise), in int64 masked to 32 bits
        step = tl.load(step_ptr + row).to(tl.int64)
        step_key = _mix32((step * 0x9E3779B9 + 0x632BE5AB) & 0xFFFFFFFF)
        row_key = _mix32((tl.load(seed_ptr + row).to(tl.int64) ^ step_key) & 0xFFFFFFFF)
        idx = tl.load(idx_ptr + row * stride_idx + j, mask=cand, other=0).to(tl.int64)
        tokens = (idx * 0x85EBCA77) & 0xFFFFFFFF
        bits = _mix32(_mix32((row_key + tokens) & 0xFFFFFFFF) ^ row_key)
        u = (((bits >> 9) & 0x7FFFFF).to(tl.float32) + 0.5) * (1.0 / 8388608.0)  # exact: a power of two
        noise = -_log(-_log(u))
        scores = tl.where(cand & (vals >= edge), vals + noise, float("-inf"))
        best = tl.max(scores, 0)
        token = tl.min(tl.where(cand & (scores == best), idx, vocab), 0)  # ties: the lowest id
        tl.store(tok_ptr + row, token)
        tl.store(exact_ptr + row, exact.to(tl.int8))

    return mqa_decode_kernel, exp_sum64_kernel, add_layernorm_kernel, nucleus_kernel


def mqa_decode(q, keys, values, lengths, scale: float, block_n: int | None = None, num_warps: int | None = None,
               new_k=None, new_v=None, num_stages: int | None = None):
    """Attention of each row's H queries to its own keys/values 0..lengths[r]-1.

    q: [R, H, D] (H and D powers of two, H >= 16 for tl.dot); keys, values: [R, C, D] with unit
    stride in D (a layer's slice of the cache); lengths: [R] int, 1..C. With `new_k`, `new_v`
    ([R, D], unit stride in D): this step's key and value of each row, written to the cache at
    position lengths[r] - 1 by the kernel and used from registers (no separate scatter). `block_n`,
    `num_warps`: the tile and launch shape (64 and 4 were the fastest of 32-128 x 2-8 in
    bench/profile_slots.py). Returns [R, H, D] in q's dtype."""
    import torch

    # None: the module's constants as they are now (read at each call, so that a caller or a
    # benchmark that sets decode_kernels.BLOCK_N etc. changes what runs)
    block_n = BLOCK_N if block_n is None else block_n
    num_warps = NUM_WARPS if num_warps is None else num_warps
    num_stages = NUM_STAGES if num_stages is None else num_stages
    rows, heads, dim = q.shape
    new = new_k is not None
    tensors = (q, keys, values) + ((new_k, new_v) if new else ())
    if any(t.stride(-1) != 1 for t in tensors):
        raise ValueError("mqa_decode needs unit stride in the head dimension")
    out = torch.empty_like(q)
    nk, nv = (new_k, new_v) if new else (q, q)  # unused without NEW
    loop_for = os.environ.get("TRITON_INTERPRET") != "1"
    with _on(q.device):
        _kernels()[0][(rows,)](q, keys, values, lengths, out, nk, nv, q.stride(0), q.stride(1), keys.stride(0),
                               keys.stride(1), values.stride(0), values.stride(1), out.stride(0), out.stride(1),
                               nk.stride(0), nv.stride(0), scale, H=heads, D=dim, BLOCK=block_n, NEW=new,
                               LOOP_FOR=loop_for, num_warps=num_warps, num_stages=num_stages)
    return out


def add_layernorm(y, bias, weight, ln_bias, eps: float):
    """The residual add of a projection's bias and a LayerNorm in one pass: y becomes y + bias
    (in place, rounded to y's dtype: the next residual stream), and the LayerNorm of that
    (float32 statistics, as torch's) is returned. y: [R, N] with unit stride in N."""
    import torch

    rows, n = y.shape
    if y.stride(1) != 1:
        raise ValueError("add_layernorm needs unit stride in the feature dimension")
    h = torch.empty_like(y)
    block = 1 << max(4, (n - 1).bit_length())
    with _on(y.device):
        _kernels()[2][(rows,)](y, bias, weight, ln_bias, h, n, eps, y.stride(0), h.stride(0), BLOCK=block,
                               num_warps=max(1, min(16, block // 256)))
    return h


def nucleus(vals, idx, z, seeds, steps, top_p: float, margin: float, vocab: int, raw=None, scale: float = 1.0):
    """The top-k path of sampler._top_k_path after its top-k, in one kernel per row: from the
    k + 1 largest logits over the temperature (`vals` float32, descending; the last one is the
    first left out) and their token ids `idx`, the row's float64 normalizer `z` [B, 1], seeds
    ([B] int64) and steps ([B] int64, or an int or 0-d tensor for all rows): the token Gumbel-max picks among the
    nucleus (top_p and margin compared in float64, as the reference does), and whether that is
    provably the full sort's (sampler._top_k_path's `exact`). With `raw` (the half-precision
    logits [B, V], unit stride in V) and `scale` (the float32 reciprocal of the temperature) in
    place of `vals` (None): each candidate's value is float32(raw[idx]) * scale, read by the kernel
    (sampler.FUSED_GATHER: no gather, float copy and division launches). Returns (tokens int64
    [B], exact bool [B])."""
    import torch

    rows, width = idx.shape
    k = width - 1
    block = 1 << max(4, (width - 1).bit_length())
    fused = raw is not None
    if fused and raw.stride(1) != 1:
        raise ValueError("nucleus needs logits with unit stride in the vocabulary")
    vals = raw if fused else vals.contiguous()
    idx, seeds = idx.contiguous(), seeds.contiguous()
    if isinstance(steps, int):
        steps = torch.tensor(steps, dtype=torch.int64, device=vals.device)
    steps = steps.expand(rows).contiguous()  # one step for all rows (0-d), or each row's
    tokens = torch.empty(rows, dtype=torch.int64, device=vals.device)
    exact = torch.empty(rows, dtype=torch.int8, device=vals.device)
    with _on(vals.device):
        # no fused multiply-adds with RAW: x = logit * scale must be rounded before x + noise, as
        # torch rounds the division before the sum
        _kernels()[3][(rows,)](vals, idx, z.contiguous(), seeds, steps, tokens, exact, k, vocab, vals.stride(0),
                               idx.stride(0), scale, TOP_P=float(top_p), MARGIN=float(margin),
                               HIGH=float(top_p) + float(margin), BLOCK=block, RAW=fused,
                               num_warps=max(4, min(16, block // 256)),
                               **({"enable_fp_fusion": False} if fused else {}))
    return tokens, exact.bool()


def exp_sum64(x, top, scale: float | None = None, top_at=None):
    """float64 [B, 1]: the sum over the last dimension of exp(x - top), x float32 [B, V] (unit
    stride in V), top float64 [B, 1]. With `scale` (a float32 value), x may be of any float dtype
    and each element is float32(x) * scale first (what torch computes for x.float() / t on CUDA
    when scale is float32(1) / float32(t): see division_by_reciprocal). With `top_at` ([B, >= 1]
    indices, e.g. the top-k's) in place of `top` (None): top is each row's x at top_at[:, 0]."""
    import torch

    rows, vocab = x.shape
    if x.stride(1) != 1:
        x = x.contiguous()
    out = torch.empty((rows, 1), dtype=torch.float64, device=x.device)
    at = top_at is not None
    # a while loop over tiles of 1024 with 4 warps (a tl.range loop over tiles of 2048, 8 warps and
    # 3 pipeline stages was about 10 us faster alone on an H100 and an H200, no faster in the
    # sampler or end to end: generate_throughput.notes.md, twelfth session)
    with _on(x.device):
        _kernels()[1][(rows,)](x, out if at else top.contiguous(), out, vocab, x.stride(0),
                               1.0 if scale is None else scale, top_at if at else out,
                               top_at.stride(0) if at else 0, BLOCK=1024, SCALED=scale is not None, TOP_AT=at,
                               num_warps=4)
    return out


@functools.lru_cache(maxsize=None)
def reciprocal(t: float) -> float:
    """float32(1) / float32(t), as a Python float (exact); cached: the sampler asks every step."""
    import torch

    return float(torch.tensor(1.0, dtype=torch.float32) / torch.tensor(t, dtype=torch.float32))


@functools.lru_cache(maxsize=None)
def division_by_reciprocal(t: float, device) -> bool:
    """Whether torch divides a float32 CUDA tensor by the Python scalar t as a product with
    reciprocal(t) (it does: ATen's div_true_kernel_cuda multiplies by the reciprocal of a CPU
    scalar), bit for bit, checked here once per value and device on numbers of many exponents.
    The sampler's kernels compute x / t that way only where this holds."""
    import torch

    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(1 << 16, generator=gen) * torch.logspace(-3, 3, 1 << 16)).to(device)
    return bool(torch.equal(x / t, x * reciprocal(t)))


def _on(device):
    """Triton launches on the current CUDA device: make it the tensors' own (the interpreter's CPU
    tensors need nothing)."""
    import torch

    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()
