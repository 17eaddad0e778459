"""Profile one batch of our sampler on the StarCoderBase-1B shape (GPU): where a decode step goes.

Also checks on the GPU that the fast paths (preallocated KV cache, top-k candidate top-p, int32
noise) give the tokens of the reference ones (DynamicCache, full sort), and times both.

    python bench/profile_generate.py [--batch 400] [--steps 32] [--no-profile]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import torch  # noqa: E402

from generate_throughput import make_model, make_prompts  # noqa: E402
from multiplt.generation import mqa_attention, sampler  # noqa: E402
from multiplt.generation.sampler import (SamplerOptions, choose_tokens_reference,  # noqa: E402
                                         sample_batch)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=400)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--no-profile", action="store_true")
    args = ap.parse_args()
    device = "cuda"
    model, config = make_model(False, device)
    mqa_attention.enable(model)
    prompts = make_prompts(args.batch // 20, 20, config.vocab_size, 1.0)[: args.batch]
    opts = SamplerOptions(temperature=0.2, top_p=0.95, max_new_tokens=args.steps, eos_token_id=0,
                          pad_token_id=0, ignore_eos=True)
    seeds = list(range(len(prompts)))
    import transformers

    from multiplt.generation import kv_cache

    with torch.inference_mode():
        out = model(input_ids=torch.tensor(prompts[:2], device=device), use_cache=True)
        cache = getattr(out, "cache", None) or out.past_key_values
        print(f"transformers {transformers.__version__}, torch {torch.__version__}: "
              f"preallocated cache {kv_cache.preallocate(cache, 8)}")
    reference = dict(preallocate=False, chooser=choose_tokens_reference)
    # same tokens on the GPU? (bf16: attention on views of the buffers vs cat'ed tensors)
    check = SamplerOptions(temperature=0.2, top_p=0.95, max_new_tokens=48, eos_token_id=0,
                           pad_token_id=0, ignore_eos=True)
    a = sample_batch(model, prompts[:96], seeds[:96], check)
    b = sample_batch(model, prompts[:96], seeds[:96], check, **reference)
    same = sum(x == y for x, y in zip(a, b))
    fallback = []  # rows that took the full-sort path in the fast chooser
    real_sort_path = sampler._sort_path
    sampler._sort_path = lambda x, *rest: fallback.append(x.shape[0]) or real_sort_path(x, *rest)
    sample_batch(model, prompts[:96], seeds[:96], check)
    sampler._sort_path = real_sort_path
    print(f"full-sort fallback: {sum(fallback)} of {96 * check.max_new_tokens} row-steps")
    print(f"fast vs reference: {same}/{len(a)} rows identical over {check.max_new_tokens} tokens")
    for name, kw in (("reference", reference), ("fast", {})):
        sample_batch(model, prompts, seeds, opts, **kw)  # warm-up
        for steps in (args.steps, 2 * args.steps):
            opts.max_new_tokens = steps
            torch.cuda.synchronize()
            t = time.perf_counter()
            sample_batch(model, prompts, seeds, opts, **kw)
            torch.cuda.synchronize()
            print(f"{name}: {steps} steps: {time.perf_counter() - t:.3f}s", flush=True)
        opts.max_new_tokens = args.steps
    if args.no_profile:
        return
    opts.max_new_tokens = args.steps
    acts = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=acts) as prof:
        sample_batch(model, prompts, list(range(len(prompts))), opts)
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=60))
    print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=15, max_name_column_width=60))


if __name__ == "__main__":
    main()
