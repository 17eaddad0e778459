"""Where a decode iteration of the slot engine goes on the GPU (StarCoderBase-1B shape, random
bf16 weights): the captured decode step alone at a few key lengths, the sampler alone on its
logits, and the matmul work of one step at the measured matmul rate.

    python bench/profile_slots.py [--rows 640] [--lengths 256,512,896]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import torch  # noqa: E402

from generate_throughput import make_model  # noqa: E402
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

        def bmm():
            scores = torch.baddbmm(bias.view(rows, 1, length), q.view(rows, heads, dim),
                                   keys.transpose(1, 2), alpha=engine.scale)
            return torch.bmm(scores.softmax(-1, dtype=torch.float32).to(engine.dtype), values)
        res[f"attn_bmm_ms_L{length}"] = round(timed(bmm), 4)
        res[f"attn_read_kv_ms_L{length}"] = round(timed(lambda: (keys.sum(), values.sum())), 4)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=640)
    ap.add_argument("--lengths", default="256,512,896")
    args = ap.parse_args()
    model, config = make_model(False, "cuda")
    engine = SlotDecoder(model, args.rows, 1024)
    out = {"rows": args.rows}
    with torch.inference_mode():
        engine.tokens.random_(1, config.vocab_size)
        for length in map(int, args.lengths.split(",")):
            engine.pos.fill_(length - 1)
            out[f"step_graph_ms_L{length}"] = round(timed(lambda: engine.step(length)), 3)
            engine.graphs = False
            out[f"step_eager_ms_L{length}"] = round(timed(lambda: engine.step(length), 5), 3)
            engine.graphs = True
        logits = engine.step(512).clone()
        seeds = torch.arange(args.rows, device="cuda")
        steps = torch.zeros(args.rows, dtype=torch.int64, device="cuda")
        for k in (256, 1024, 4096):
            out[f"choose_k{k}_ms"] = round(timed(lambda: _choose(logits, seeds, steps, 0.2, 0.95, k)), 3)
            out[f"choose_k{k}_full_sort_rows"] = _choose(logits, seeds, steps, 0.2, 0.95, k)[1]
            out[f"topk{k}_ms"] = round(timed(lambda: logits.float().topk(k + 1, dim=-1)), 3)
        out["sort_path_ms"] = round(timed(lambda: _sort_path(logits.float() / 0.2, seeds, steps, 0.95)), 3)
        choose = TokenChooser(candidates=1024, max_candidates=4096)  # as slot_batching on CUDA
        out["sampler_ms"] = round(timed(lambda: choose(logits, seeds, steps, 0.2, 0.95)), 3)
        out["sampler_candidates"] = choose.candidates
        # the CPU's single-token test, not on the GPU yet: its cost on these flat rows (no row
        # passes), and on peaked rows (one token 12 logits above the rest, as a trained model at
        # temperature 0.2 gives for most rows), against today's GPU chooser on the same rows
        peaked = logits.clone()
        peaked[torch.arange(args.rows, device="cuda"), torch.randint(0, config.vocab_size, (args.rows,),
                                                                     device="cuda")] += 12
        for name, rows in (("flat", logits), ("peaked", peaked)):
            gpu = TokenChooser.for_device(rows.device)
            single = TokenChooser(candidates=1024, max_candidates=4096, single=True)
            out[f"sampler_{name}_ms"] = round(timed(lambda: gpu(rows, seeds, steps, 0.2, 0.95)), 3)
            out[f"sampler_{name}_single_ms"] = round(timed(lambda: single(rows, seeds, steps, 0.2, 0.95)), 3)
            assert torch.equal(gpu(rows, seeds, steps, 0.2, 0.95), single(rows, seeds, steps, 0.2, 0.95))
        out.update(attention_variants(engine, (512, 768)))
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
