"""Where a decode iteration of the slot engine goes on the GPU (StarCoderBase-1B shape, random
bf16 weights): the captured decode step alone at a few key lengths, with the Triton decode
kernels (decode_kernels.py, the default: the fused step of static_kv._forward_fused), with the
kernels' attention in the module step (`_unfused`) and without kernels (`_sdpa`: SDPA over every
slot up to the bucket), rows at the bucket's end and at random positions; one layer's attention
by each, and the kernel's tiles, warps and pipeline stages over every layer in one CUDA graph,
and a kernel that only reads what the attention reads (read_ceiling: attn_read_only_*); the sampler
alone on its logits, with and without the nucleus kernel, the float64 normalizer kernel and the
top-k over the half-precision logits, and in the two settings of its switch
(sampler_no_switches_ms, sampler_fused_gather_ms; normalizer_raw_while_ms: the normalizer
alone over the bf16 logits); each GEMM of the step as the step calls it (gemm_<name>_ms,
gemm_<name>_tflops, gemm_step_ms; again with cuBLASLt for every GEMM, keys with _lt, and with
PyTorch's TunableOp, keys with _tuned); and the matmul work of one step at the measured matmul rate.

    python bench/profile_slots.py [--rows 640] [--lengths 256,512,896]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import torch  # noqa: E402

from generate_throughput import make_model  # noqa: E402
from multiplt.generation import decode_kernels, sampler, static_kv  # noqa: E402
from multiplt.generation.sampler import TokenChooser, _choose, _sort_path  # noqa: E402
from multiplt.generation.static_kv import SlotDecoder  # noqa: E402


def timed(fn, reps: int = 20) -> float:
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / reps * 1e3


def _graphed(every_layer, layers: int) -> float:
    """ms per layer of `every_layer` (a call that runs each layer once) captured in one CUDA graph
    and replayed; run once first, outside the capture (kernels compile, TunableOp tunes there)."""
    every_layer()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        every_layer()
    return timed(graph.replay) / layers


def graphed_ms(every_layer, layers: int):
    """_graphed, rounded; a shape that fails (shared memory, a build error) gives "failed: ..."."""
    try:
        return round(_graphed(every_layer, layers), 4)
    except Exception as err:  # noqa: BLE001 - reported, the rest of the profile goes on
        return f"failed: {type(err).__name__}: {err}"


def attention_variants(engine, lengths) -> dict:
    """One layer's decode attention over all slots: the step's SDPA (query heads as query
    positions of the one KV head, additive mask) against two batched matmuls around a softmax;
    plus the time to read that layer's keys and values once at the copy bandwidth."""
    import torch.nn.functional as F

    rows, heads, dim = engine.rows, engine.n_head, engine.head_dim
    q = torch.randn(rows, 1, heads, dim, dtype=engine.dtype, device="cuda")
    res = {}
    for length in lengths:
        keys, values = engine.keys[0, :, :length], engine.values[0, :, :length]
        bias = torch.zeros((rows, 1, 1, length), dtype=engine.dtype, device="cuda")
        bias[..., length // 2:] = float("-inf")
        res[f"attn_sdpa_ms_L{length}"] = round(timed(lambda: F.scaled_dot_product_attention(
            q, keys[:, None], values[:, None], attn_mask=bias, scale=engine.scale)), 4)
        # the kernel with every row at length // 2 (the mask above) and at the full length
        for tag, n in (("", length // 2), ("_full", length)):
            lengths_t = torch.full((rows,), n, device="cuda")
            ms = timed(lambda: decode_kernels.mqa_decode(q[:, 0], engine.keys[0], engine.values[0], lengths_t,
                                                         engine.scale))
            res[f"attn_kernel_ms_L{length}{tag}"] = round(ms, 4)
            # keys and values read once: rows x n positions x 2 tensors x dim x 2 bytes
            res[f"attn_kernel_GBps_L{length}{tag}"] = round(rows * n * 2 * dim * 2 / ms / 1e6, 1)

        def bmm():
            scores = torch.baddbmm(bias.view(rows, 1, length), q.view(rows, heads, dim),
                                   keys.transpose(1, 2), alpha=engine.scale)
            return torch.bmm(scores.softmax(-1, dtype=torch.float32).to(engine.dtype), values)
        res[f"attn_bmm_ms_L{length}"] = round(timed(bmm), 4)
        res[f"attn_read_kv_ms_L{length}"] = round(timed(lambda: (keys.sum(), values.sum())), 4)
    # tile and launch shapes of the kernel, rows at random lengths in [L/4, L): every layer's
    # attention captured in one CUDA graph and replayed, per layer (single launches of one layer
    # were too noisy to rank tiles: the tenth session's notes)
    length = lengths[0]
    lengths_t = torch.randint(length // 4, length, (rows,), device="cuda")
    layers = engine.keys.shape[0]
    tiles = [(block_n, warps, stages) for block_n in (32, 64, 128) for warps in (2, 4, 8)
             for stages in (1, 2, 3, 4)  # 1: no software pipelining
             if not (block_n == 128 and (warps == 2 or stages == 4))]
    for block_n, warps, stages in tiles:
        def every_layer():
            for i in range(layers):
                decode_kernels.mqa_decode(q[:, 0], engine.keys[i], engine.values[i], lengths_t,
                                          engine.scale, block_n, warps, num_stages=stages)
        res[f"attn_kernel_b{block_n}_w{warps}_s{stages}_ms_L{length}_rand"] = graphed_ms(every_layer, layers)
    timed_tiles = [k for k in res if k.startswith("attn_kernel_b") and isinstance(res[k], float)]
    if timed_tiles:
        best = min(timed_tiles, key=res.get)
        res["attn_best_tile"] = ",".join(part[1:] for part in best.split("_")[2:5])  # BLOCK_N,WARPS,STAGES
    reads = read_ceiling(engine, lengths_t, length)
    res.update(reads)
    # the attention kernel's own rate over the same bytes, at its default tile
    tile = (f"attn_kernel_b{decode_kernels.BLOCK_N}_w{decode_kernels.NUM_WARPS}_s{decode_kernels.NUM_STAGES}"
            f"_ms_L{length}_rand")
    if isinstance(res.get(tile), float) and "attn_read_bytes_per_layer" in reads:
        res[f"attn_kernel_default_GBps_L{length}_rand"] = round(reads["attn_read_bytes_per_layer"] / res[tile] / 1e6, 1)
    return res


def read_ceiling(engine, lengths_t, length) -> dict:
    """The attention kernel's reads alone: a kernel with its grid (one program per slot) and its
    loop over the slot's key and value tiles that only sums them, every layer graphed as in the
    tile sweep (attn_read_only_b*_ms_L{length}_rand, and its GB/s over the bytes read). Triton
    loads these tiles straight into registers (no shared-memory pipeline: that it builds for loads
    that feed a tl.dot), so this is a plain streaming kernel of the same shape, not a bound."""
    found = decode_kernels._triton()  # Triton comes with PyTorch's CUDA builds
    if found is None:
        return {"attn_read_only": "failed: Triton is not installed"}
    triton, tl, _ = found

    @triton.jit
    def read_kernel(k_ptr, v_ptr, len_ptr, o_ptr, stride_kr, stride_kn, stride_vr, stride_vn,
                    D: tl.constexpr, BLOCK: tl.constexpr, STAGES: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        n = tl.load(len_ptr + row)
        dims = tl.arange(0, D)
        acc = tl.zeros([D], tl.float32)
        for n0 in tl.range(0, n, BLOCK, num_stages=STAGES):
            cols = n0 + tl.arange(0, BLOCK)
            inside = cols < n
            k = tl.load(k_ptr + row * stride_kr + cols[:, None] * stride_kn + dims[None, :], mask=inside[:, None],
                        other=0.0)
            v = tl.load(v_ptr + row * stride_vr + cols[:, None] * stride_vn + dims[None, :], mask=inside[:, None],
                        other=0.0)
            acc += tl.sum(k.to(tl.float32) + v.to(tl.float32), 0)
        tl.store(o_ptr + row * D + dims, acc)

    rows, dim, layers = engine.rows, engine.head_dim, engine.keys.shape[0]
    out = torch.empty((rows, dim), dtype=torch.float32, device="cuda")
    read = int(lengths_t.sum()) * 2 * dim * engine.keys.element_size()  # bytes a layer reads
    res = {}
    for block_n, warps, stages in ((64, 4, 2), (64, 4, 3), (128, 4, 2), (128, 8, 3), (32, 4, 4)):
        def every_layer():
            for i in range(layers):
                keys, values = engine.keys[i], engine.values[i]
                read_kernel[(rows,)](keys, values, lengths_t, out, keys.stride(0), keys.stride(1), values.stride(0),
                                     values.stride(1), D=dim, BLOCK=block_n, STAGES=stages, num_warps=warps)
        key = f"attn_read_only_b{block_n}_w{warps}_s{stages}"
        ms = res[f"{key}_ms_L{length}_rand"] = graphed_ms(every_layer, layers)
        if isinstance(ms, float):
            res[f"{key}_GBps_L{length}_rand"] = round(read / ms / 1e6, 1)
    res["attn_read_bytes_per_layer"] = read
    return res


def step_gemms(model, rows: int) -> dict:
    """Each GEMM of the fused decode step (static_kv._forward_fused) at `rows` rows, as the step
    calls it, captured `layers` times in one CUDA graph and replayed (per call: ms, TFLOP/s), and
    their sum over one step (gemm_step_ms): which of them run below the card's matmul rate."""
    import torch.nn.functional as F

    t = model.transformer
    layer, layers = t.h[0], len(t.h)
    embed = model.config.n_embd
    h = torch.randn(rows, embed, dtype=torch.bfloat16, device="cuda")
    x = torch.randn(rows, embed, dtype=torch.bfloat16, device="cuda")
    up = torch.randn(rows, layer.mlp.c_fc.weight.shape[0], dtype=torch.bfloat16, device="cuda")
    calls = {
        "qkv": (lambda: F.linear(h, layer.attn.c_attn.weight, layer.attn.c_attn.bias), layer.attn.c_attn.weight),
        "attn_out": (lambda: x.addmm_(h, layer.attn.c_proj.weight.t()), layer.attn.c_proj.weight),
        "mlp_up_gelu": (lambda: torch._addmm_activation(layer.mlp.c_fc.bias, h, layer.mlp.c_fc.weight.t(),
                                                        use_gelu=True), layer.mlp.c_fc.weight),
        "mlp_down": (lambda: x.addmm_(up, layer.mlp.c_proj.weight.t()), layer.mlp.c_proj.weight),
        "lm_head": (lambda: model.lm_head(h), model.lm_head.weight),
    }
    res = {}
    default = torch.backends.cuda.preferred_blas_library()

    def time_all(tag):
        step = 0.0
        for name, (call, weight) in calls.items():
            ms = _graphed(lambda call=call: [call() for _ in range(layers)], layers)
            res[f"gemm_{name}{tag}_ms"] = round(ms, 4)
            res[f"gemm_{name}{tag}_tflops"] = round(2 * rows * weight.numel() / ms / 1e9, 1)
            step += ms * (1 if name == "lm_head" else layers)
        res[f"gemm_step{tag}_ms"] = round(step, 3)

    # torch's default BLAS library, then cuBLASLt for every GEMM (its own heuristics; keys _lt)
    for library, tag in ((default, ""), (torch._C._BlasBackend.Cublaslt, "_lt")):
        torch.backends.cuda.preferred_blas_library(library)
        try:
            time_all(tag)
        finally:
            torch.backends.cuda.preferred_blas_library(default)
    # PyTorch's TunableOp: each GEMM shape's candidate algorithms timed at its first call, the
    # fastest kept (keys _tuned)
    tunable = torch.cuda.tunable
    was = None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            was = tunable.is_enabled(), tunable.tuning_is_enabled(), tunable.get_filename()
            tunable.enable(True)
            tunable.tuning_enable(True)
            tunable.set_filename(str(pathlib.Path(tmp) / "tunableop.csv"))
            time_all("_tuned")
        except Exception as err:  # noqa: BLE001 - reported, the rest of the profile goes on
            res = {k: v for k, v in res.items() if "_tuned" not in k}
            res["gemm_tuned"] = f"failed: {type(err).__name__}: {err}"
        finally:
            if was is not None:
                tunable.enable(was[0])
                tunable.tuning_enable(was[1])
                tunable.set_filename(was[2])
    res["blas_default"] = str(default)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=640)
    ap.add_argument("--lengths", default="256,512,896")
    args = ap.parse_args()
    model, config = make_model(False, "cuda")
    decode_kernels.ENABLED = True  # measured here whatever the default
    engine = SlotDecoder(model, args.rows, 1024, kernels=True)
    sdpa = SlotDecoder(model, args.rows, 1024, kernels=False)  # the engine without them
    unfused = SlotDecoder(model, args.rows, 1024, kernels=True)  # the kernels' attention, module step
    out = {"rows": args.rows, "kernels": engine.kernels}
    with torch.inference_mode():
        static_kv.FUSED_STEP = False  # read when a step is captured: `unfused` captures now
        unfused.step(512)
        static_kv.FUSED_STEP = True
        engines = [("", engine), ("_sdpa", sdpa), ("_unfused", unfused)]
        for _, e in engines:
            e.tokens.random_(1, config.vocab_size, generator=torch.Generator("cuda").manual_seed(0))
        for length in map(int, args.lengths.split(",")):
            # every row at the bucket's last position (the kernels' worst case), then rows at
            # random positions in [L/4, L) (a run's rows are at different lengths)
            low = torch.randint(length // 4, length, (args.rows,), device="cuda",
                                generator=torch.Generator("cuda").manual_seed(length))
            for tag, pos in (("", None), ("_rand", low)):
                for name, e in engines:
                    e.pos.copy_(pos) if pos is not None else e.pos.fill_(length - 1)
                    out[f"step_graph{name}_ms_L{length}{tag}"] = round(timed(lambda: e.step(length)), 3)
            engine.pos.fill_(length - 1)
            engine.graphs = False
            out[f"step_eager_ms_L{length}"] = round(timed(lambda: engine.step(length), 5), 3)
            engine.graphs = True
        engine.pos.fill_(511)
        sdpa.pos.fill_(511)
        logits = engine.step(512).clone()
        out["step_logits_max_abs_diff_vs_sdpa"] = round((logits.float() - sdpa.step(512).float()).abs().max().item(), 4)
        unfused.pos.fill_(511)
        out["step_logits_max_abs_diff_vs_unfused"] = round((logits.float() - unfused.step(512).float()).abs().max().item(), 4)
        del unfused, engines
        x = logits.float() / 0.2
        top = x.amax(-1, keepdim=True).double()
        out["normalizer_kernel_ms"] = round(timed(lambda: decode_kernels.exp_sum64(x, top)), 4)
        out["normalizer_torch_ms"] = round(timed(lambda: x.double().sub_(top).exp_().sum(-1, keepdim=True)), 4)
        seeds = torch.arange(args.rows, device="cuda")
        steps = torch.zeros(args.rows, dtype=torch.int64, device="cuda")
        for k in (256, 1024, 4096):
            out[f"choose_k{k}_ms"] = round(timed(lambda: _choose(logits, seeds, steps, 0.2, 0.95, k)), 3)
            out[f"choose_k{k}_full_sort_rows"] = _choose(logits, seeds, steps, 0.2, 0.95, k)[1]
            out[f"topk{k}_ms"] = round(timed(lambda: logits.float().topk(k + 1, dim=-1)), 3)
            out[f"topk{k}_half_ms"] = round(timed(lambda: logits.topk(k + 1, dim=-1)), 3)
        out["sort_path_ms"] = round(timed(lambda: _sort_path(logits.float() / 0.2, seeds, steps, 0.95)), 3)
        sampler.HALF_TOPK = True
        choose = TokenChooser(candidates=1024, max_candidates=4096)  # as slot_batching on CUDA
        out["sampler_ms"] = round(timed(lambda: choose(logits, seeds, steps, 0.2, 0.95)), 3)
        out["sampler_candidates"] = choose.candidates
        peaked = logits.clone()
        peaked[torch.arange(args.rows, device="cuda"), torch.randint(0, config.vocab_size, (args.rows,),
                                                                     device="cuda")] += 12
        plain = TokenChooser(candidates=1024, max_candidates=4096)
        switch = sampler.FUSED_GATHER  # the default
        want = choose(logits, seeds, steps, 0.2, 0.95)  # the tokens with the defaults
        try:
            # the sampler's switch (sampler.FUSED_GATHER) in its two settings; the same tokens as
            # the default's in each
            for fused, name in ((False, "sampler_no_switches_ms"), (True, "sampler_fused_gather_ms")):
                sampler.FUSED_GATHER = fused
                out[name] = round(timed(lambda: plain(logits, seeds, steps, 0.2, 0.95)), 3)
                assert torch.equal(plain(logits, seeds, steps, 0.2, 0.95), want)
            inv = decode_kernels.reciprocal(0.2)
            out["normalizer_raw_while_ms"] = round(
                timed(lambda: decode_kernels.exp_sum64(logits, top, inv)), 4)
            sampler.FUSED_GATHER = False
            sampler.RAW_LOGITS = False  # the float32 copy over the temperature first
            out["sampler_float_copy_ms"] = round(timed(lambda: plain(logits, seeds, steps, 0.2, 0.95)), 3)
            assert torch.equal(plain(logits, seeds, steps, 0.2, 0.95), want)
            sampler.NUCLEUS_KERNEL = False  # and the top-k path's torch ops after the top-k
            out["sampler_torch_nucleus_ms"] = round(timed(lambda: plain(logits, seeds, steps, 0.2, 0.95)), 3)
            assert torch.equal(plain(logits, seeds, steps, 0.2, 0.95), want)
            sampler.NUCLEUS_KERNEL, sampler.HALF_TOPK = True, False  # the top-k over the float32 logits
            out["sampler_fp32_topk_ms"] = round(timed(lambda: plain(logits, seeds, steps, 0.2, 0.95)), 3)
            assert torch.equal(plain(logits, seeds, steps, 0.2, 0.95), want)
            decode_kernels.ENABLED = False  # and the sampler's torch normalizer
            out["sampler_without_kernels_ms"] = round(timed(lambda: plain(logits, seeds, steps, 0.2, 0.95)), 3)
            assert torch.equal(plain(logits, seeds, steps, 0.2, 0.95), want)
        finally:
            decode_kernels.ENABLED = sampler.HALF_TOPK = sampler.NUCLEUS_KERNEL = sampler.RAW_LOGITS = True
            sampler.FUSED_GATHER = switch
        # the CPU's single-token test, not on the GPU yet: its cost on these flat rows (no row
        # passes), and on peaked rows (one token 12 logits above the rest, as a trained model at
        # temperature 0.2 gives for most rows), against today's GPU chooser on the same rows
        for name, rows in (("flat", logits), ("peaked", peaked)):
            gpu = TokenChooser.for_device(rows.device)
            single = TokenChooser(candidates=1024, max_candidates=4096, single=True)
            out[f"sampler_{name}_ms"] = round(timed(lambda: gpu(rows, seeds, steps, 0.2, 0.95)), 3)
            out[f"sampler_{name}_single_ms"] = round(timed(lambda: single(rows, seeds, steps, 0.2, 0.95)), 3)
            assert torch.equal(gpu(rows, seeds, steps, 0.2, 0.95), single(rows, seeds, steps, 0.2, 0.95))
        out.update(attention_variants(engine, (512, 768)))
        out.update(step_gemms(model, args.rows))
        a = torch.randn(args.rows, 2048, dtype=torch.bfloat16, device="cuda")
        w = torch.randn(8192, 2048, dtype=torch.bfloat16, device="cuda")
        ms = timed(lambda: a @ w.T)
        out["mlp_up_matmul_ms"] = round(ms, 4)
        out["matmul_tflops_at_rows"] = round(2 * args.rows * 2048 * 8192 / ms / 1e9, 1)
        flops = 2 * args.rows * sum(p.numel() for n, p in model.named_parameters() if "wpe" not in n)
        out["step_matmul_ms_at_that_rate"] = round(flops / (out["matmul_tflops_at_rows"] * 1e9), 3)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
