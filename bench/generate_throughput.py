"""GPU generation throughput: our sampler vs a MultiPL-E-automodel-like baseline.

Model: StarCoderBase-1B-shaped GPTBigCode (24 layers, hidden 2048, 16 heads, multi-query
attention, vocabulary 49152), random weights in bf16 (no pretrained weights are reachable).
Prompts: random token ids with the Racket HumanEval prompts' token lengths
(bench/inputs/rkt_prompt_tokens.json, see bench/prompt_lengths.py), 20 samples per problem.
Every sequence generates exactly --new-tokens tokens (EOS and stop strings off,
min_new_tokens = max_new_tokens); only generated non-pad tokens are counted.

  baseline: transformers `generate`, batches of 40 in MultiPL-E order (each problem's samples
            consecutive), left padding, default (dynamic) cache, sdpa, do_sample, top_p 0.95.
  ours:     multiplt.generation.sampler.sample_batch: prompts grouped by length, large batches,
            keyed per-sample noise, logits of the last position only, few host syncs,
            preallocated KV cache (kv_cache.py), decode attention without cuDNN (no execution
            plan built per key length), copy-free multi-query decode attention, int32 noise.
Both run on the same fixed subset (the first --subset-problems problems x 20 = >= 400
sequences); ours also runs the full set (161 x 20).

    python bench/generate_throughput.py --out bench/results/generate_throughput.json   # GPU
    python bench/generate_throughput.py --tiny                                          # CPU smoke
Imports only torch, transformers and this package's generation code.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import transformers  # noqa: E402

from multiplt.generation import mqa_attention  # noqa: E402
from multiplt.generation.sampler import SamplerOptions, sample_batch  # noqa: E402

LENGTHS = pathlib.Path(__file__).parent / "inputs" / "rkt_prompt_tokens.json"


def make_model(tiny: bool, device: str):
    if tiny:
        cfg = dict(n_layer=2, n_embd=64, n_head=4, vocab_size=1024)
    else:
        cfg = dict(n_layer=24, n_embd=2048, n_head=16, vocab_size=49152)
    config = transformers.GPTBigCodeConfig(multi_query=True, n_positions=8192, bos_token_id=0,
                                           eos_token_id=0, pad_token_id=0, **cfg)
    config._attn_implementation = "sdpa"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        model = transformers.GPTBigCodeForCausalLM(config).to(dtype)
    model.config._attn_implementation = "sdpa"
    return model.eval(), config


def make_prompts(n_problems: int, samples: int, vocab: int, scale: float) -> list[list[int]]:
    lengths = json.loads(LENGTHS.read_text())["lengths"][:n_problems]
    gen = torch.Generator().manual_seed(1)
    out = []
    for length in lengths:  # MultiPL-E order: each problem's samples consecutive
        ids = torch.randint(1, vocab, (max(1, int(length * scale)),), generator=gen).tolist()
        out += [ids] * samples
    return out


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def run_baseline(model, prompts, new_tokens, batch_size, device) -> dict:
    counted = 0
    sync(device)
    start = time.perf_counter()
    for i in range(0, len(prompts), batch_size):
        batch = prompts[i: i + batch_size]
        width = max(map(len, batch))
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, p in enumerate(batch):
            ids[r, width - len(p):] = torch.tensor(p)
            mask[r, width - len(p):] = 1
        with torch.inference_mode():
            out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                 do_sample=True, temperature=0.2, top_p=0.95,
                                 max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                 pad_token_id=0, eos_token_id=0)
        counted += int((out[:, width:] != 0).sum())  # generated, non-pad
    sync(device)
    secs = time.perf_counter() - start
    return {"sequences": len(prompts), "new_tokens": counted, "seconds": round(secs, 2),
            "tokens_per_s": round(counted / secs, 1), "batch_size": batch_size}


def run_ours(model, prompts, new_tokens, batch_size, device) -> dict:
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # group by length
    opts = SamplerOptions(temperature=0.2, top_p=0.95, max_new_tokens=new_tokens, eos_token_id=0,
                          pad_token_id=0, ignore_eos=True)
    counted = 0
    sync(device)
    start = time.perf_counter()
    for i in range(0, len(order), batch_size):
        idx = order[i: i + batch_size]
        outs = sample_batch(model, [prompts[j] for j in idx], [j for j in idx], opts)
        counted += sum(sum(1 for t in o if t != 0) for o in outs)  # non-pad
    sync(device)
    secs = time.perf_counter() - start
    return {"sequences": len(prompts), "new_tokens": counted, "seconds": round(secs, 2),
            "tokens_per_s": round(counted / secs, 1), "batch_size": batch_size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="CPU smoke test: tiny model and shapes")
    ap.add_argument("--subset-problems", type=int, default=20, help="x samples = fixed subset")
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--full-problems", type=int, default=161)
    ap.add_argument("--new-tokens", type=int, default=512)
    ap.add_argument("--baseline-batch", type=int, default=40)
    ap.add_argument("--ours-batch", type=int, default=800)
    ap.add_argument("--skip-full", action="store_true")
    ap.add_argument("--out", help="write the results JSON here")
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    if args.tiny:
        args.subset_problems, args.samples, args.full_problems = 2, 4, 4
        args.new_tokens, args.baseline_batch, args.ours_batch = 8, 4, 8
    model, config = make_model(args.tiny, device)
    scale = 0.1 if args.tiny else 1.0
    subset = make_prompts(args.subset_problems, args.samples, config.vocab_size, scale)
    result = {"command": " ".join([pathlib.Path(sys.executable).name] + sys.argv),
              "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
              "versions": {"python": platform.python_version(), "torch": torch.__version__,
                           "transformers": transformers.__version__,
                           "cuda": torch.version.cuda if device == "cuda" else None},
              "model": {"n_layer": config.n_layer, "n_embd": config.n_embd, "n_head": config.n_head,
                        "vocab_size": config.vocab_size, "multi_query": True,
                        "dtype": "bfloat16" if device == "cuda" else "float32", "weights": "random"},
              "prompt_lengths": json.loads(LENGTHS.read_text())["source"],
              "new_tokens_per_sequence": args.new_tokens}
    print(f"device {result['device']}; subset {len(subset)} sequences", flush=True)
    # baseline first, on stock sdpa attention (warm-up: CUDA context, cuBLAS, sdpa kernels)
    run_baseline(model, subset[:4], 4, 4, device)
    result["baseline"] = run_baseline(model, subset, args.new_tokens, args.baseline_batch, device)
    print("baseline", result["baseline"], flush=True)
    # ours: copy-free multi-query decode attention + our sampler
    result["ours_attention"] = "multiplt_mqa" if mqa_attention.enable(model) else "sdpa"
    run_ours(model, subset[:4], 4, 4, device)
    result["ours"] = run_ours(model, subset, args.new_tokens, args.ours_batch, device)
    print("ours", result["ours"], flush=True)
    result["ratio"] = round(result["ours"]["tokens_per_s"] / result["baseline"]["tokens_per_s"], 2)
    print("ratio", result["ratio"], flush=True)
    if args.out:  # keep the comparison even if the full run does not finish
        pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    if not args.skip_full:
        full = make_prompts(args.full_problems, args.samples, config.vocab_size, scale)
        result["ours_full"] = run_ours(model, full, args.new_tokens, args.ours_batch, device)
        print("ours_full", result["ours_full"], flush=True)
    if device == "cuda":
        result["max_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
