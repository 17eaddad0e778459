"""Profile one batch of our sampler on the StarCoderBase-1B shape (GPU): where a decode step goes.

    python bench/profile_generate.py [--batch 400] [--steps 32]
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
from multiplt.generation import mqa_attention  # noqa: E402
from multiplt.generation.sampler import SamplerOptions, sample_batch  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=400)
    ap.add_argument("--steps", type=int, default=32)
    args = ap.parse_args()
    device = "cuda"
    model, config = make_model(False, device)
    mqa_attention.enable(model)
    prompts = make_prompts(args.batch // 20, 20, config.vocab_size, 1.0)[: args.batch]
    opts = SamplerOptions(temperature=0.2, top_p=0.95, max_new_tokens=args.steps, eos_token_id=0,
                          pad_token_id=0, ignore_eos=True)
    sample_batch(model, prompts, list(range(len(prompts))), opts)  # warm-up
    for steps in (args.steps, 2 * args.steps):
        opts.max_new_tokens = steps
        torch.cuda.synchronize()
        t = time.perf_counter()
        sample_batch(model, prompts, list(range(len(prompts))), opts)
        torch.cuda.synchronize()
        print(f"{steps} steps: {time.perf_counter() - t:.3f}s")
    opts.max_new_tokens = args.steps
    acts = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=acts) as prof:
        sample_batch(model, prompts, list(range(len(prompts))), opts)
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=60))
    print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=15, max_name_column_width=60))


if __name__ == "__main__":
    main()
