"""The Triton decode kernels (decode_kernels.py): attention of each slot to its own positions and
the sampler's float64 normalizer. On the CPU they run in Triton's interpreter (a subprocess with
TRITON_INTERPRET=1, where Triton is installed; PyTorch's CPU build does not bring it); on a GPU
(marker `gpu`) compiled, against SDPA and in the slot engine's captured steps."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from multiplt.generation import decode_kernels


def row_between_float32_and_float64_top_p(vocab: int, dtype, top_p: float = 0.95):
    """Logits of `dtype` (for temperature 1) whose mass before the second token lies strictly
    between float32(top_p) and top_p, clear of the 1e-9 margin: the reference keeps that token in
    the nucleus, a comparison with top_p rounded to float32 (0.95 -> 0.949999988) drops it."""
    import math

    p32 = float(torch.tensor(top_p, dtype=torch.float32))
    low, high = p32 + (top_p - p32) / 4, top_p - (top_p - p32) / 4
    q = lambda v: float(torch.tensor(v, dtype=dtype))  # noqa: E731 - the nearest value of the dtype
    values = [0.0, q(math.log(0.04 / top_p))]
    need = 2.0 / (low + high) - 1.0 - math.exp(values[1])  # the rest of the normalizer
    for level in (q(-11.5), q(-16.0), q(-20.0)):  # each level's tokens fill what is left, coarse to fine
        count = int(need / math.exp(level))
        values += [level] * count
        need -= count * math.exp(level)
    values += [q(-40.0)] * (vocab - len(values))
    x = torch.tensor(values, dtype=torch.float64)
    mass = 1.0 / float(torch.exp(x).sum())  # the mass before token 1: token 0's (at 0, the top)
    assert low < mass < high, (mass, low, high)
    return x.to(dtype)

_INTERPRETED = textwrap.dedent("""
    import torch
    from multiplt.generation import decode_kernels as dk

    torch.manual_seed(0)
    rows, heads, dim, capacity = 6, 16, 32, 200
    lengths = torch.tensor([1, 7, 64, 65, 129, 200])
    for dtype in (torch.float32, torch.float16):
        # as the slot engine passes them: q a strided view of the fused qkv projection, keys and
        # values one layer's slice of a [layers, rows, capacity, dim] cache
        qkv = torch.randn(rows, heads * dim + 2 * dim).to(dtype)
        q = qkv[:, : heads * dim].view(rows, heads, dim)
        keys = torch.randn(3, rows, capacity, dim).to(dtype)[1]
        values = torch.randn(3, rows, capacity, dim).to(dtype)[2]
        for r, n in enumerate(lengths.tolist()):  # what a slot must not read
            keys[r, n:] = float("nan")
            values[r, n:] = float("nan")
        ref = torch.stack([(q[r].float() @ keys[r, :n].float().T * dim ** -0.5).softmax(-1)
                           @ values[r, :n].float() for r, n in enumerate(lengths.tolist())])
        for block_n in (16, 64):
            out = dk.mqa_decode(q, keys, values, lengths, dim ** -0.5, block_n=block_n)
            assert out.dtype == dtype and out.shape == (rows, heads, dim)
            err = (out.float() - ref).abs().max().item()
            assert err < (1e-5 if dtype == torch.float32 else 2e-3), (dtype, block_n, err)
    x = torch.randn(5, 3000) * 8
    x[1, 100:] = float("-inf")
    top = x.amax(-1, keepdim=True).double()
    got = dk.exp_sum64(x, top)
    assert got.dtype == torch.float64 and got.shape == (5, 1)
    want = x.double().sub(top).exp().sum(-1, keepdim=True)
    assert ((got - want).abs() / want).max().item() < 1e-14
    print("ok")
""")


_INTERPRETED_FUSED = textwrap.dedent("""
    import torch
    import transformers
    from multiplt.generation import decode_kernels as dk, sampler
    from multiplt.generation.noise import gumbel_noise_at
    from multiplt.generation.static_kv import SlotDecoder

    torch.manual_seed(0)
    # mqa_decode writing the step's key and value itself: the cache gets them at length - 1, and
    # positions from there on are not read before (NaN planted)
    rows, heads, dim, capacity = 5, 16, 16, 100
    lengths = torch.tensor([1, 2, 17, 64, 100])
    q = torch.randn(rows, heads, dim)
    keys, values = torch.randn(rows, capacity, dim), torch.randn(rows, capacity, dim)
    qkv = torch.randn(rows, 3 * dim)  # strided new keys and values, as the engine passes them
    new_k, new_v = qkv[:, dim: 2 * dim], qkv[:, 2 * dim:]
    ref = []
    for r, n in enumerate(lengths.tolist()):
        k = torch.cat([keys[r, : n - 1], new_k[r: r + 1]])
        v = torch.cat([values[r, : n - 1], new_v[r: r + 1]])
        ref.append((q[r] @ k.T * dim ** -0.5).softmax(-1) @ v)
        keys[r, n - 1:] = float("nan")
        values[r, n - 1:] = float("nan")
    out = dk.mqa_decode(q, keys, values, lengths, dim ** -0.5, block_n=16, new_k=new_k, new_v=new_v)
    assert (out - torch.stack(ref)).abs().max().item() < 1e-5
    for r, n in enumerate(lengths.tolist()):
        assert torch.equal(keys[r, n - 1], new_k[r]) and torch.equal(values[r, n - 1], new_v[r])
        assert keys[r, n:].isnan().all()

    # add_layernorm: y += bias in place, and the LayerNorm of the sum
    y, bias, w, b = torch.randn(7, 300), torch.randn(300), torch.randn(300), torch.randn(300)
    want_x = y + bias
    h = dk.add_layernorm(y, bias, w, b, 1e-5)
    assert torch.equal(y, want_x)
    assert (h - torch.nn.functional.layer_norm(want_x, (300,), w, b, 1e-5)).abs().max().item() < 1e-5

    # nucleus: the torch top-k path's tokens and exactness, on flat, peaked and tied rows
    vocab = 3000
    logits = torch.randn(64, vocab) * 2
    logits[:8, 5] += 12
    logits[8:12] = 0.0
    x = logits / 0.7
    seeds, steps = torch.randint(0, 2 ** 31, (64,)), torch.randint(0, 600, (64,))
    for k in (16, 255, 1024):
        vals, idx = x.topk(k + 1, dim=-1)
        top = vals[:, :1].double()
        z = sampler._normalizer(x, top)
        tokens, exact = dk.nucleus(vals, idx, z, seeds, steps, 0.95, sampler._MARGIN, vocab)
        before = sampler._mass_before(vals, top, z)
        edge = sampler._nucleus_edge(vals, before[:, :k], 0.95)
        want_exact = ((before[:, k] > 0.95 + sampler._MARGIN)
                      & ~((before[:, :k] - 0.95).abs() <= sampler._MARGIN).any(-1) & (edge[:, 0] > vals[:, k]))
        scores = (vals[:, :k] + gumbel_noise_at(seeds, steps, idx[:, :k])).masked_fill(vals[:, :k] < edge,
                                                                                      float("-inf"))
        best = scores.max(-1, keepdim=True).values
        want = torch.where(scores == best, idx[:, :k], vocab).min(-1).values
        assert torch.equal(exact, want_exact) and 0 < int(exact.sum()) < 64, (k, exact)
        assert torch.equal(tokens, want), k

    # the normalizer over half-precision logits, dividing by the temperature inside the kernel
    raw = (torch.randn(5, 3000) * 4).to(torch.float16)
    inv = dk.reciprocal(0.3)
    x = raw.float() * inv
    top = x.amax(-1, keepdim=True).double()
    want = x.double().sub(top).exp().sum(-1, keepdim=True)
    assert ((dk.exp_sum64(raw, top, inv) - want).abs() / want).max().item() < 1e-14

    # the sampler's top-k path over the raw half-precision logits (no float32 copy over the
    # temperature) equals the reference; the kernels pretended available on the CPU, and T = 0.25,
    # whose division and reciprocal product agree on any device
    dk.available = lambda device, dtype=None: True
    sampler.HALF_TOPK_DEVICES = ("cpu",)
    raw = (torch.randn(48, 3000) * 3).to(torch.float16)
    raw[:6, 7] += 30
    raw[6:10] = 0.0
    seeds = torch.randint(0, 2 ** 31, (48,))
    # in both settings of the switch: the kernels reading the candidates' logits themselves
    default = sampler.FUSED_GATHER
    for fused in (False, True):
        sampler.FUSED_GATHER = fused
        for step in (0, torch.randint(0, 600, (48,))):
            got, fallback = sampler._choose(raw, seeds, step, 0.25, 0.95, 256)
            assert torch.equal(got, sampler.choose_tokens_reference(raw, seeds, step, 0.25, 0.95)) and 0 < fallback < 48
    sampler.FUSED_GATHER = default
    # the normalizer with the top at the top-k's first index
    idx = raw.topk(5, dim=-1).indices
    x = raw.float() * dk.reciprocal(0.25)
    want = (x.double() - x.amax(-1, keepdim=True).double()).exp().sum(-1, keepdim=True)
    assert ((dk.exp_sum64(raw, None, dk.reciprocal(0.25), top_at=idx) - want).abs() / want).max().item() < 1e-14


    # top_p compared in float64: a mass before a token between float32(0.95) and 0.95 keeps it
    from tests.unit.generation.test_decode_kernels import row_between_float32_and_float64_top_p

    edge_rows = row_between_float32_and_float64_top_p(2000, torch.float16)[None].repeat(256, 1)
    seeds = torch.arange(256) * 7919
    sampler.HALF_TOPK_DEVICES = ("cpu",)
    want = sampler.choose_tokens_reference(edge_rows, seeds, 0, 1.0, 0.95)
    got, fallback = sampler._choose(edge_rows, seeds, 0, 1.0, 0.95, 16)
    assert fallback == 0 and int((want == 1).sum()) > 0 and torch.equal(got, want)

    # the probe that available() runs on a GPU, each kernel once
    assert dk._probe_others(torch.device("cpu"))

    # the fused decode step (7 launches a layer) against the module step, float32
    config = transformers.GPTBigCodeConfig(n_layer=2, n_embd=256, n_head=16, vocab_size=300, multi_query=True,
                                           n_positions=128, bos_token_id=0, eos_token_id=0)
    model = transformers.GPTBigCodeForCausalLM(config).eval()
    prompts = [torch.randint(1, 300, (n,)).tolist() for n in (5, 20, 1)]
    runs = []
    with torch.inference_mode():
        for fused in (False, True):
            engine = SlotDecoder(model, 4, 64, graphs=False)
            engine.kernels = fused  # the kernels, interpreted on the CPU
            first = engine.prefill([0, 1, 2], prompts)
            engine.pos[:3] = torch.tensor([len(p) for p in prompts])
            engine.tokens[:3] = first.argmax(-1)
            logits = []
            for _ in range(3):
                out = engine.step(engine.key_length(int(engine.pos.max()) + 1))
                logits.append(out[:3].clone())
                engine.tokens.copy_(out.argmax(-1))
                engine.pos[:3] += 1
            runs.append((torch.stack(logits), engine.keys[:, :3].clone(), engine.values[:, :3].clone()))
    for a, b in zip(*runs):
        assert (a - b).abs().max().item() < 1e-5
    print("ok")
""")


def _interpret(script: str):
    """Run `script` in a subprocess with Triton's interpreter; it prints ok."""
    pytest.importorskip("triton", reason="Triton is not installed (PyTorch's CPU build does not bring it)")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": os.pathsep.join(
        [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_fused_step_kernels_in_tritons_interpreter():
    """The kernels of the fused decode step and of the sampler's nucleus: attention that writes
    the step's key and value itself, bias + residual + LayerNorm in one pass, the nucleus and
    Gumbel-max of the top-k path (the torch path's tokens and exactness), and the fused step
    against the module step."""
    _interpret(_INTERPRETED_FUSED)


def test_kernels_in_tritons_interpreter():
    """Each slot's attention equals the softmax over its own positions, reading none past its
    length (NaN there), with tiles of 16 and 64 positions; the normalizer equals float64 torch."""
    _interpret(_INTERPRETED)


def test_kernels_serve_only_cuda_half_precision():
    assert not decode_kernels.available(torch.device("cpu"))
    assert not decode_kernels.available(torch.device("cpu"), torch.bfloat16)


@pytest.mark.parametrize("capability,serves", [((7, 5), False), ((8, 0), True), ((9, 0), True)])
def test_kernels_need_compute_capability_8(monkeypatch, capability, serves):
    """bf16 tl.dot needs Ampere or later: older GPUs keep SDPA and the torch normalizer."""
    monkeypatch.setattr(decode_kernels, "_triton", lambda: ("triton", "tl"))
    monkeypatch.setattr(decode_kernels, "_launches", lambda index: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: capability)
    decode_kernels._capable.cache_clear()
    try:
        assert decode_kernels.available(torch.device("cuda", 0), torch.bfloat16) is serves
        assert decode_kernels.available(torch.device("cuda", 0)) is serves
        assert not decode_kernels.available(torch.device("cuda", 0), torch.float32)
    finally:
        decode_kernels._capable.cache_clear()


def test_a_host_where_triton_cannot_launch_keeps_the_torch_paths(monkeypatch, caplog):
    """Triton builds a C launcher at the first launch: where that fails (no C compiler, say) the
    probe says so once, with a warning, and the kernels are not used."""
    calls = []

    def fails(x, top):
        calls.append(1)
        raise RuntimeError("Failed to find C compiler. Please specify via CC environment variable.")

    monkeypatch.setattr(decode_kernels, "_triton", lambda: ("triton", "tl"))
    monkeypatch.setattr(decode_kernels, "_capable", lambda index: True)
    monkeypatch.setattr(decode_kernels, "exp_sum64", fails)
    monkeypatch.setattr(torch, "zeros", lambda *a, **k: torch.empty(0))  # no CUDA tensors here
    decode_kernels._launches.cache_clear()
    try:
        with caplog.at_level("WARNING"):
            assert not decode_kernels.available(torch.device("cuda", 0), torch.bfloat16)
            assert not decode_kernels.available(torch.device("cuda", 0))
        assert calls == [1]
        assert "Failed to find C compiler" in caplog.text
    finally:
        decode_kernels._launches.cache_clear()


def test_a_kernel_that_fails_to_build_in_the_probe_keeps_every_torch_path(monkeypatch, caplog):
    """The probe launches each kernel once: one that cannot be built (the nucleus here) turns all
    of them off, with a warning, instead of failing the first sampling step."""
    def fails(*args, **kwargs):
        raise RuntimeError("PassManager::run failed")

    monkeypatch.setattr(decode_kernels, "_triton", lambda: ("triton", "tl", "libdevice"))
    monkeypatch.setattr(decode_kernels, "_capable", lambda index: True)
    monkeypatch.setattr(decode_kernels, "exp_sum64", lambda x, top: torch.full((1, 1), 8.0, dtype=torch.float64))
    monkeypatch.setattr(decode_kernels, "nucleus", fails)
    monkeypatch.setattr(torch, "zeros", lambda *a, **k: torch.empty(0))  # no CUDA tensors here
    monkeypatch.setattr(torch, "tensor", lambda *a, **k: torch.empty(0))
    decode_kernels._launches.cache_clear()
    try:
        with caplog.at_level("WARNING"):
            assert not decode_kernels.available(torch.device("cuda", 0), torch.bfloat16)
        assert "PassManager::run failed" in caplog.text
    finally:
        decode_kernels._launches.cache_clear()


def test_the_attention_launch_reads_the_tile_constants_at_each_call(monkeypatch):
    """decode_kernels.BLOCK_N / NUM_WARPS / NUM_STAGES set at run time (bench/generate_throughput.py
    --attn-tile) reach the launch of the engine's calls, which pass none of them."""
    launched = []

    class Kernel:
        def __getitem__(self, grid):
            return lambda *args, **kwargs: launched.append(kwargs)

    monkeypatch.setattr(decode_kernels, "_kernels", lambda: [Kernel()])
    monkeypatch.setattr(decode_kernels, "BLOCK_N", 32)
    monkeypatch.setattr(decode_kernels, "NUM_WARPS", 8)
    monkeypatch.setattr(decode_kernels, "NUM_STAGES", 4)
    q, cache = torch.zeros(2, 16, 16), torch.zeros(2, 8, 16)
    decode_kernels.mqa_decode(q, cache, cache, torch.ones(2, dtype=torch.int64), 0.25)
    assert (launched[0]["BLOCK"], launched[0]["num_warps"], launched[0]["num_stages"]) == (32, 8, 4)
    decode_kernels.mqa_decode(q, cache, cache, torch.ones(2, dtype=torch.int64), 0.25, 64, 2, num_stages=1)
    assert (launched[1]["BLOCK"], launched[1]["num_warps"], launched[1]["num_stages"]) == (64, 2, 1)


def test_the_slot_engine_refuses_kernels_where_they_cannot_run():
    import transformers

    from multiplt.generation.static_kv import SlotDecoder

    config = transformers.GPTBigCodeConfig(n_layer=1, n_embd=64, n_head=4, vocab_size=64, multi_query=True)
    model = transformers.GPTBigCodeForCausalLM(config).eval()
    assert not SlotDecoder(model, 4, 32).kernels
    with pytest.raises(ValueError, match="Triton decode kernels"):
        SlotDecoder(model, 4, 32, kernels=True)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("rows", [640, 33, 1])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_mqa_decode_equals_sdpa_on_the_gpu(rows, dtype, monkeypatch):
    monkeypatch.setattr(decode_kernels, "ENABLED", True)
    torch.manual_seed(0)
    heads, dim, capacity = 16, 128, 1024
    q = torch.randn(rows, heads, dim, dtype=dtype, device="cuda")
    keys = torch.randn(rows, capacity, dim, dtype=dtype, device="cuda")
    values = torch.randn(rows, capacity, dim, dtype=dtype, device="cuda")
    lengths = torch.randint(1, capacity + 1, (rows,), device="cuda")
    lengths[0] = 1
    lengths[-1] = capacity
    columns = torch.arange(capacity, device="cuda")
    bias = torch.zeros((rows, 1, 1, capacity), dtype=dtype, device="cuda")
    bias.masked_fill_((columns[None, :] >= lengths[:, None])[:, None, None, :], float("-inf"))
    ref = torch.nn.functional.scaled_dot_product_attention(
        q[:, None].float(), keys[:, None].float(), values[:, None].float(), attn_mask=bias.float(),
        scale=dim ** -0.5)[:, 0]
    for r, n in enumerate(lengths.tolist()):
        keys[r, n:] = float("nan")
        values[r, n:] = float("nan")
    out = decode_kernels.mqa_decode(q, keys, values, lengths, dim ** -0.5)
    assert out.dtype == dtype
    assert (out.float() - ref).abs().max().item() < 2e-2


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_exp_sum64_equals_float64_torch_on_the_gpu():
    x = torch.randn(640, 49152, device="cuda") * 5
    top = x.amax(-1, keepdim=True).double()
    want = x.double().sub(top).exp().sum(-1, keepdim=True)
    got = decode_kernels.exp_sum64(x, top)
    assert ((got - want).abs() / want).max().item() < 1e-13


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_slot_engine_steps_with_kernels_equal_sdpa_steps_on_the_gpu(monkeypatch):
    """The captured bf16 step with the kernels gives the SDPA step's logits to bf16 rounding, at
    rows of different positions (free slots at position 0 included)."""
    import transformers

    from multiplt.generation.static_kv import SlotDecoder

    monkeypatch.setattr(decode_kernels, "ENABLED", True)
    config = transformers.GPTBigCodeConfig(n_layer=2, n_embd=512, n_head=16, vocab_size=1000,
                                           multi_query=True, n_positions=512)
    torch.manual_seed(0)
    model = transformers.GPTBigCodeForCausalLM(config).to("cuda", torch.bfloat16).eval()
    prompts = [torch.randint(1, 1000, (n,)).tolist() for n in (5, 70, 130, 1, 200)]
    logits = []
    with torch.inference_mode():
        for kernels in (False, True):
            engine = SlotDecoder(model, 8, 400, kernels=kernels)
            assert engine.kernels == kernels
            first = engine.prefill([0, 1, 2, 3, 4], prompts)
            engine.pos[:5] = torch.tensor([len(p) for p in prompts], device="cuda")
            engine.tokens[:5] = first.argmax(-1)
            steps = []
            for _ in range(3):
                out = engine.step(engine.key_length(int(engine.pos.max()) + 1)).float()
                steps.append(out[:5].clone())
                engine.tokens.copy_(out.argmax(-1))
                engine.pos[:5] += 1
            logits.append(torch.stack(steps))
    assert (logits[0] - logits[1]).abs().max().item() < 0.1
    assert (logits[0].argmax(-1) == logits[1].argmax(-1)).float().mean().item() > 0.9


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_sampler_with_the_normalizer_kernel_equals_the_reference_on_the_gpu(monkeypatch):
    """choose_tokens on CUDA (top-k over the bf16 logits, float64 normalizer and nucleus kernels)
    against the reference with torch ops alone, on flat, peaked and tied rows, at 1024 and 4096
    candidates."""
    from multiplt.generation import sampler

    torch.manual_seed(0)
    flat = torch.randn(256, 49152, device="cuda")
    peaked = flat.clone()
    peaked[torch.arange(256), torch.randint(0, 49152, (256,))] += 12
    tied = peaked.clone()
    tied[:64, :4] = tied[:64].amax(-1, keepdim=True)  # ties at the top, kept by the nucleus
    tied[64:96] = 0.0  # all tied: the full sort
    seeds = torch.arange(256, device="cuda") * 7919
    # torch divides by the temperature as a product with its reciprocal: the raw-logits path serves
    assert decode_kernels.division_by_reciprocal(0.2, torch.device("cuda"))
    # masses before a token between float32(0.95) and 0.95 (at temperature 1)
    edge = row_between_float32_and_float64_top_p(49152, torch.bfloat16)[None].repeat(256, 1).cuda()
    with monkeypatch.context() as m:
        m.setattr(decode_kernels, "ENABLED", False)
        want = sampler.choose_tokens_reference(edge, seeds, 0, 1.0, 0.95)
    for fused in (False, True):
        with monkeypatch.context() as m:
            m.setattr(decode_kernels, "ENABLED", True)
            m.setattr(sampler, "FUSED_GATHER", fused)
            got, fallback = sampler._choose(edge, seeds, 0, 1.0, 0.95, 1024)
        assert fallback == 0 and int((want == 1).sum()) > 0 and torch.equal(got, want)
    for logits in (flat, peaked, tied):
        for step, fused in ((0, False), (1, True), (2, False), (511, True)):
            for candidates in (1024, 4096):  # tiles of 2048 and 8192 in the nucleus kernel
                with monkeypatch.context() as m:
                    m.setattr(decode_kernels, "ENABLED", True)
                    m.setattr(sampler, "HALF_TOPK", True)
                    m.setattr(sampler, "NUCLEUS_KERNEL", True)
                    # the switch: the kernels read the candidates' logits themselves
                    m.setattr(sampler, "FUSED_GATHER", fused)
                    fast, fallback = sampler._choose(logits.bfloat16(), seeds, torch.full_like(seeds, step), 0.2,
                                                     0.95, candidates)
                with monkeypatch.context() as m:
                    m.setattr(decode_kernels, "ENABLED", False)
                    ref = sampler.choose_tokens_reference(logits.bfloat16(), seeds, step, 0.2, 0.95)
                assert torch.equal(fast, ref)
                assert fallback < 256 or logits is flat
