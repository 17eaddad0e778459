"""Training throughput of `multiplt train` against a plain transformers Trainer (issue 6 point 7,
issue 17 point 3).

The StarCoderBase-1B shape (GPTBigCode, 24 layers, d=2048, multi-query attention, vocab 49152),
randomly initialised, on packed 2048-token sequences, 8 x 2048 tokens per optimizer step (the
paper's effective batch). Both sides run in this one process on the same card:

  baseline  transformers Trainer at the paper's settings: per-device batch 1 x gradient
            accumulation 8, bf16, AdamW (Trainer default), cosine with warmup 100, weight decay
            0.001, clipping 1.0, SDPA attention (FlashAttention-2 is not installed on the image)
  default   `multiplt train` with the recipe (starcoderbase-1b) and no speed flags: the recipe is
            resolved as the command resolves it and the micro-batch and compile come from
            multiplt.training.speed.plan_for on this card's free memory (the function the training
            loop calls); then the same step code as "ours" below
  ours      multiplt.training as `multiplt train --micro-batch-size 8 --compile` runs it: the same
            recipe with micro-batch 8 x accumulation 1, precision auto (one GPU: bf16-master, bf16
            weights and activations, fp32 master weights and moments in the optimizer; variant
            suffix M: bf16-mixed, bf16 autocast over fp32 weights, the default before),
            multiplt's GPTBigCode forward (multiplt/training/gptbigcode.py: each block compiled,
            LM head fused with the loss in chunks, no per-step host sync), fused AdamW with the
            gradient clipping inside it; variant "8cx" is the same with transformers' forward

For each: tokens/s over >= 50 optimizer steps after 10 warm-up steps (CUDA-synchronized wall
clock), peak GPU memory, and MFU under two conventions: `mfu` = 6 * N * tokens/s / 989e12 with
N = num_parameters() (all parameters, tied embeddings counted once, attention score FLOPs not
counted), and `mfu_with_attention` = (6 N + 12 * n_layer * n_embd * seq_len) * tokens/s / 989e12
(PaLM's convention: the QK^T and AV matmuls, forward and backward, without halving for the
causal mask). The baseline runs at each --trainer-micro micro-batch (accumulation 8 / micro);
the record compares the default with the fastest of them. `card` (CUDA): the driver, power
limit and clocks nvidia-smi reports when the record is written (cards of one model differ from
machine to machine).

    python bench/train_throughput.py --variants default --trainer-micro 1,2,4,8 --out $OUT/train_throughput.json  # GPU
    python bench/train_throughput.py --profile --variants 8cT,8c,8cx --out $OUT/train_throughput.json  # GPU
    python bench/train_throughput.py --tiny --steps 3 --warmup 1 --out /tmp/t.json     # CPU check

Imports only torch, transformers, accelerate and this package's training modules (and, on a GPU,
bench/generate_throughput.py's card_info, which runs nvidia-smi).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

PEAK_BF16_FLOPS = 989e12  # H100/H200 SXM dense bf16, the MFU denominator
SEQ_LEN, BATCH = 2048, 8  # the recipe: 8 sequences of 2048 tokens per optimizer step


def card_info() -> dict:
    """generate_throughput.card_info: the card's power limit and clocks (nvidia-smi)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from generate_throughput import card_info as read

    return read()


def model_config(tiny: bool):
    from transformers import GPTBigCodeConfig

    if tiny:  # a CPU-sized model of the same architecture, for checking the script itself
        return GPTBigCodeConfig(vocab_size=1024, n_positions=256, n_embd=64, n_layer=2, n_head=4,
                                multi_query=True, use_cache=False, bos_token_id=0, eos_token_id=0)
    # bigcode/starcoderbase-1b's config.json
    return GPTBigCodeConfig(vocab_size=49152, n_positions=8192, n_embd=2048, n_layer=24, n_head=16,
                            n_inner=8192, multi_query=True, activation_function="gelu_pytorch_tanh",
                            attn_pdrop=0.1, embd_pdrop=0.1, resid_pdrop=0.1, use_cache=False,
                            bos_token_id=0, eos_token_id=0)


def new_model(config, device):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    with torch.device(device):  # initialise in place: 1B parameters on a CPU take long
        return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")


def packed_data(vocab: int, seq_len: int, n_seqs: int, eos: int = 0) -> torch.Tensor:
    """Random "documents" of 50-3000 tokens packed with EOS separators, as `multiplt train` does."""
    from multiplt.training.packing import pack

    g = torch.Generator().manual_seed(0)
    docs, total = [], 0
    while total < (n_seqs + 1) * seq_len:
        n = int(torch.randint(50, 3000, (1,), generator=g))
        docs.append(torch.randint(1, vocab, (n,), generator=g).tolist())
        total += n + 1
    seqs, _ = pack(docs, eos, seq_len)
    return seqs[:n_seqs]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def reset_memory(device):
    import gc

    gc.collect()  # the last variant's model/optimizer/scheduler may sit in reference cycles
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None


ATTN_FLOPS_PER_TOKEN = 0  # 12 * n_layer * n_embd * seq_len, set in main()


def summarize(name, step_times, tokens_per_step, n_params, device, extra) -> dict:
    elapsed = sum(step_times)
    tok_s = tokens_per_step * len(step_times) / elapsed
    result = {"name": name, "steps_measured": len(step_times), "seconds": round(elapsed, 3),
              "tokens_per_step": tokens_per_step, "tokens_per_s": round(tok_s, 1),
              "mean_step_s": round(elapsed / len(step_times), 4),
              "peak_memory_gib": None if peak_gib(device) is None else round(peak_gib(device), 2),
              "mfu": round(6 * n_params * tok_s / PEAK_BF16_FLOPS, 4),
              "mfu_with_attention": round((6 * n_params + ATTN_FLOPS_PER_TOKEN) * tok_s / PEAK_BF16_FLOPS, 4),
              **extra}
    print(f"{name}: {tok_s:,.0f} tokens/s, MFU {result['mfu']:.1%} (6N), "
          f"{result['mfu_with_attention']:.1%} (with attention), peak {result['peak_memory_gib']} GiB",
          flush=True)
    return result


def run_baseline(config, data, args, device, n_params, micro: int = 1) -> dict:
    """transformers Trainer at the paper's settings; step times from a callback."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    model = new_model(config, device)
    state = {}

    class Timer(TrainerCallback):  # synchronized clock at the end of warm-up and of the last step
        def on_step_end(self, a, s, c, **kw):
            if s.global_step in (args.warmup, args.warmup + args.steps):
                sync(device)
                state[s.global_step] = time.perf_counter()

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return data.shape[0]

        def __getitem__(self, i):
            return {"input_ids": data[i], "labels": data[i]}

    targs = TrainingArguments(
        output_dir=os.path.join(args.workdir, "trainer"), per_device_train_batch_size=micro,
        gradient_accumulation_steps=BATCH // micro, learning_rate=3e-5, lr_scheduler_type="cosine",
        warmup_steps=100, weight_decay=0.001, max_grad_norm=1.0, bf16=device.type == "cuda",
        max_steps=args.warmup + args.steps, save_strategy="no", logging_steps=10**9,
        report_to=[], dataloader_drop_last=True, disable_tqdm=True, use_cpu=device.type != "cuda", seed=0)
    reset_memory(device)
    trainer = Trainer(model=model, args=targs, train_dataset=Rows(), callbacks=[Timer()])
    trainer.train()
    elapsed = state[args.warmup + args.steps] - state[args.warmup]
    times = [elapsed / args.steps] * args.steps
    result = summarize(f"baseline micro{micro}", times, BATCH * data.shape[1], n_params, device,
                       {"micro_batch": micro, "grad_accum": BATCH // micro, "optimizer": str(targs.optim),
                        "precision": "bf16 autocast (Trainer bf16=True)", "attention": "sdpa",
                        "compile": False})
    del trainer, model
    return result


def run_ours(config, data, args, device, n_params, micro: int, compile_: str, fast: bool = True,
             attention: str = "gqa", precision_: str = "auto", mode: str = "full") -> dict:
    """multiplt.training's step function, optimizer and schedule, set up as `multiplt train` does.

    `mode` (--probe-overlap; timing probes only, their numerics are not a training run's):
    "full" is train_step; "fb_only" runs the micro-batches' forward and backward and no
    optimizer step (how long the step would take if the update were free); "overlap" runs each
    step's optimizer update on a side stream, beside the next step's forward and backward (it
    waits only before the next clip, which rewrites the gradients the update reads): how much of
    the update such an overlap could hide. In "overlap" the forward reads weights the update is
    still writing, so its losses are not meaningful."""
    from multiplt.training.config import TrainConfig
    from multiplt.training.loop import make_accelerator
    from multiplt.training.optim import build_optimizer, build_scheduler
    from multiplt.training.step import (LaggedMetrics, clip_grad_norm, compile_blocks, lm_loss,
                                        setup_forward, train_step)

    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)  # each variant may use another mixed-precision setting
    cfg = TrainConfig(micro_batch_size=micro, compile=bool(compile_), fast_forward=fast, precision=precision_)
    accelerator, precision = make_accelerator(cfg)
    model = new_model(config, accelerator.device)
    model.config.use_cache = False
    why_not = setup_forward(model, cfg, attention=attention)  # as the training loop does
    # bf16-master: fp32 masters copied from the fp32 model, which is then cast to bf16
    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay, master_weights=precision == "bf16-master")
    model, optimizer = accelerator.prepare(model, optimizer)
    scheduler = build_scheduler(optimizer, cfg.warmup_steps, 10_000)
    if compile_ and why_not is not None:
        model = compile_blocks(model, whole=compile_ == "f")
    model.train()
    reset_memory(device)
    metrics = LaggedMetrics()  # as in the training loop: step k's loss is read after step k+1 is queued
    seen = []
    side = torch.cuda.Stream(device) if mode.startswith("overlap") else None
    # overlap_priority: the steps run on a high-priority stream, so the GPU schedules their
    # kernels' blocks ahead of the update's as SMs free up (one update kernel fills every SM)
    main = torch.cuda.Stream(device, priority=-1) if mode == "overlap_priority" else None
    pending = []  # overlap: the event that ends the previous step's update

    def forward_backward(micro_batches):
        total = torch.zeros((), device=accelerator.device)
        for b in micro_batches:
            loss = lm_loss(model, b, cfg.compile) / len(micro_batches)
            accelerator.backward(loss)
            total += loss.detach()
        return total

    def probe_step(micro_batches):
        loss = forward_backward(micro_batches)
        if mode == "fb_only":
            optimizer.zero_grad(set_to_none=True)
            return loss, torch.zeros((), device=accelerator.device)
        if pending:  # the update still reading the last step's gradients must end first
            torch.cuda.current_stream(device).wait_event(pending.pop())
        norm = clip_grad_norm(model, optimizer, accelerator, cfg.max_grad_norm)
        ready = torch.cuda.Event()
        ready.record()
        with torch.cuda.stream(side):
            side.wait_event(ready)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            done = torch.cuda.Event()
            done.record(side)
        pending.append(done)
        scheduler.step()
        return loss, norm

    def step_once(step):
        if main is None:
            return step_on(step)
        with torch.cuda.stream(main):
            return step_on(step)

    def step_on(step):
        idx = [(step * BATCH + j) % data.shape[0] for j in range(BATCH)]
        batch = data[idx]
        if device.type == "cuda":  # as the training loop: pinned, so the copy does not wait for the GPU
            batch = batch.pin_memory()
        batch = batch.to(accelerator.device, non_blocking=True)
        if mode != "full":
            loss, norm = probe_step(list(batch.split(micro)))
        else:
            loss, norm = train_step(model, optimizer, scheduler, list(batch.split(micro)), accelerator,
                                    cfg.max_grad_norm, compiled=cfg.compile)
        done = metrics.push({"step": step}, loss=loss, grad_norm=norm)
        if done:
            seen.append(done)
        return batch

    for step in range(args.warmup):
        batch = step_once(step)
    metrics.flush()
    sync(device)
    t0 = time.perf_counter()  # one synchronized clock over all measured steps
    for step in range(args.warmup, args.warmup + args.steps):
        batch = step_once(step)
    seen.append(metrics.flush())
    sync(device)
    times = [(time.perf_counter() - t0) / args.steps] * args.steps
    loss = seen[-1]["loss"]
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(2):
                train_step(model, optimizer, scheduler, list(batch.split(micro)), accelerator, 1.0,
                           compiled=cfg.compile)
            sync(device)
        table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=60, max_name_column_width=90)
        summary = profile_summary(prof, steps=2)
        print(summary, flush=True)
        with open(os.path.join(os.path.dirname(os.path.abspath(args.out)), f"profile-{micro}{compile_}.txt"), "w") as f:
            f.write(summary + "\n\n" + table)
        args.profile = False
    name = (f"ours micro{micro}{'+compile' if compile_ else ''}"
            f"{'+fast-forward' if why_not is None else '+transformers-forward'}"
            f"{'+kv-expand' if attention == 'expand' and why_not is None else ''}"
            f"{'+' + str(_compile_mode()[0]) if why_not is None and compile_ and _compile_mode()[0] else ''}"
            f"{'+coordinate-descent' if why_not is None and compile_ and _compile_mode()[1] else ''}"
            f"{'+flash' if not torch.backends.cuda.cudnn_sdp_enabled() and device.type == 'cuda' else ''}"
            f"+{precision}")
    result = summarize(name, times, BATCH * data.shape[1],
                       n_params, device, {"micro_batch": micro, "grad_accum": BATCH // micro,
                                          "forward": "multiplt gptbigcode" if why_not is None else "transformers",
                                          "optimizer": "torch AdamW fused (multiplt.training.optim)",
                                          "precision": precision, "attention": "sdpa",
                                          "compile": compile_, "final_loss": round(loss, 4)})
    del model, optimizer
    accelerator.free_memory()
    return result


def default_plan(config, device) -> tuple[int, str, dict]:
    """What `multiplt train` (recipe starcoderbase-1b, no speed flags) picks on this card: the
    recipe resolved as the command resolves it, then multiplt.training.speed.plan_for, called as
    the training loop calls it (model not yet on the GPU: here a meta-device copy for its shape)."""
    from multiplt.training import speed
    from multiplt.training.config import resolve
    from multiplt.training.loop import resolve_precision

    cfg = resolve("starcoderbase-1b", {"dataset": "bench", "base": "bench", "lang": "rkt",
                                       "experiment": "bench", "out": "/tmp/bench"})
    assert cfg.batch_size == BATCH, cfg.batch_size
    reset_memory(device)
    precision = resolve_precision(cfg, world=1)
    p = speed.plan_for(cfg, new_model(config, "meta"), device, precision, world=1)
    info = {"recipe": "starcoderbase-1b", "recipe_micro_batch_size": cfg.micro_batch_size,
            "recipe_compile": cfg.compile, "precision": precision, "micro_batch": p.micro_batch,
            "grad_accum": p.grad_accum, "compile": p.compile, "reason": p.reason}
    print("default plan:", info, flush=True)
    return p.micro_batch, "c" if p.compile else "", info


def _compile_mode():
    from multiplt.training import gptbigcode

    return gptbigcode.COMPILE_MODE, gptbigcode.COMPILE_OPTIONS


def profile_summary(prof, steps: int) -> str:
    """GPU kernel time per step by kind (GEMM, attention, optimizer, norm, elementwise, ...)."""
    kinds = {}
    total = 0.0
    for e in prof.key_averages():
        t = getattr(e, "self_device_time_total", None)
        if t is None:
            t = getattr(e, "self_cuda_time_total", 0)
        if not t or e.device_type is None or "cuda" not in str(e.device_type).lower():
            continue
        if "#" in e.key:  # a user annotation's range on the GPU timeline (Optimizer.step#...), not a kernel
            continue
        n = e.key.lower()
        kind = ("gemm" if any(k in n for k in ("gemm", "cutlass", "sm90_xmma", "nvjet", "cublas")) else
                "attention" if any(k in n for k in ("flash", "fmha", "cudnn", "attention", "sdpa")) else
                "adam" if "adam" in n else
                "triton (compiled LayerNorm, GELU, dropout, residual, loss)" if "triton" in n else
                "grad norm" if any(k in n for k in ("norm", "foreach")) else
                "copy/cast" if any(k in n for k in ("copy", "memcpy", "memset", "fill", "cast")) else
                "other")
        kinds.setdefault(kind, [0.0, []])
        kinds[kind][0] += t
        kinds[kind][1].append((t, e.key[:80]))
        total += t
    lines = [f"GPU kernel time per step: {total / 1e3 / steps:.1f} ms"]
    for kind, (t, items) in sorted(kinds.items(), key=lambda kv: -kv[1][0]):
        top = "; ".join(f"{k} {v / 1e3 / steps:.1f}" for v, k in sorted(items, reverse=True)[:3])
        lines.append(f"  {kind:30s} {t / 1e3 / steps:7.1f} ms   top: {top}")
    return "\n".join(lines)


def attention_bench(device) -> list[dict]:
    """fwd+bwd time of one layer's attention at the 1B shape (8 x 2048, 16 heads of 128, one
    key/value head, causal, dropout 0.1) for each SDPA kernel, with the key/value head shared
    (enable_gqa) or repeated over the 16 query heads."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    B, T, H, D = 8, 2048, 16, 128
    flops = 4 * B * H * T * T * D / 2 * 3.5  # causal fwd + bwd (2.5x fwd)
    rows = []
    for backend in (SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION):
        for mode in ("gqa", "expand"):
            for p in (0.1, 0.0):
                q = torch.randn(B, H, T, D, device=device, dtype=torch.bfloat16, requires_grad=True)
                kv = torch.randn(B, 1, T, D, device=device, dtype=torch.bfloat16, requires_grad=True)
                g = torch.randn(B, H, T, D, device=device, dtype=torch.bfloat16)

                def run():
                    k = kv if mode == "gqa" else kv.expand(B, H, T, D)
                    out = torch.nn.functional.scaled_dot_product_attention(
                        q, k, k, dropout_p=p, is_causal=True, enable_gqa=mode == "gqa")
                    out.backward(g)
                try:
                    with sdpa_kernel([backend]):
                        for _ in range(3):
                            run()
                        sync(device)
                        t0 = time.perf_counter()
                        for _ in range(10):
                            run()
                        sync(device)
                    ms = (time.perf_counter() - t0) / 10 * 1e3
                    row = {"backend": backend.name, "kv": mode, "dropout": p, "ms_fwd_bwd": round(ms, 3),
                           "tflops": round(flops / ms / 1e9, 1)}
                except Exception as exc:
                    row = {"backend": backend.name, "kv": mode, "dropout": p, "error": str(exc)[:160]}
                rows.append(row)
                print("attention", row, flush=True)
    return rows


def check_master(device) -> dict:
    """The compiled flat AdamW update of precision bf16-master against the same function run
    eagerly, on random buffers (relative error of master weights, moments and bf16 output)."""
    from multiplt.training import master

    g = torch.Generator(device=device).manual_seed(1)
    n = 10_000_019
    bufs = [torch.randn(n, generator=g, device=device) for _ in range(2)] + \
        [torch.rand(n, generator=g, device=device) * 1e-4]
    grad = torch.randn(n, generator=g, device=device).to(torch.bfloat16)
    scalars = torch.tensor([3e-5, 0.7, 1 - 0.9 ** 5, (1 - 0.999 ** 5) ** 0.5], device=device)
    ref = [b.clone() for b in bufs] + [torch.full((n,), float("nan"), device=device, dtype=torch.bfloat16)]
    out = [b.clone() for b in bufs] + [torch.full((n,), float("nan"), device=device, dtype=torch.bfloat16)]
    master._adamw_flat(*ref[:3], grad, ref[3], scalars, 0.001, 0.9, 0.999, 1e-8)
    master._update_fn(device)(*out[:3], grad, out[3], scalars, 0.001, 0.9, 0.999, 1e-8)
    row = {name: float((o.float() - r.float()).norm() / r.float().norm())
           for name, o, r in zip(("master", "exp_avg", "exp_avg_sq", "out_bf16"), out, ref)}
    row["nan"] = any(bool(o.float().isnan().any()) for o in out)
    print("bf16-master update, compiled vs eager (relative error):", row, flush=True)
    return row


def pick_ours(results: list[dict]) -> dict | None:
    """"ours" is the fastest variant that `multiplt train` itself runs (its forward, compile on or
    off, default attention kernel and compile settings); bench-only settings (A, G, T, E, F, f) are
    recorded as variants but not picked."""
    plain = [r for r in results if r.get("plain", True)]
    return max(plain or results, key=lambda r: r["tokens_per_s"]) if results else None


def _git_commit() -> str | None:
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def versions(device) -> dict:
    import accelerate
    import transformers

    out = {"python": platform.python_version(), "torch": str(torch.__version__),
           "transformers": transformers.__version__, "accelerate": accelerate.__version__}
    if device.type == "cuda":
        out["cuda"] = torch.version.cuda
        out["cudnn"] = torch.backends.cudnn.version()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=50, help="measured optimizer steps (>= 50 for the record)")
    ap.add_argument("--warmup", type=int, default=10, help="unmeasured optimizer steps first")
    ap.add_argument("--tiny", action="store_true", help="tiny model and 128-token sequences (CPU check)")
    ap.add_argument("--variants", default="default",
                    help="ours: comma-separated; 'default' = what `multiplt train` picks with the "
                    "recipe and no speed flags; else micro-batch sizes; suffix c = compile (multiplt's "
                    "forward, or each transformers block with x), x = transformers' forward instead "
                    "of multiplt's, f = compile the whole transformers model, F = flash attention "
                    "kernel instead of cuDNN, E = repeat the key/value head for SDPA, "
                    "A = compile mode max-autotune-no-cudagraphs, G = compile mode reduce-overhead "
                    "(CUDA graphs of each block), T = inductor coordinate-descent "
                    "tuning of the compiled kernels, M = precision bf16-mixed (bf16 autocast over "
                    "fp32 weights) instead of the default (bf16-master on one GPU) (default %(default)s)")
    ap.add_argument("--check-master", action="store_true",
                    help="compare the compiled bf16-master AdamW update with the eager one first")
    ap.add_argument("--attention-bench", action="store_true", help="time SDPA kernels at the 1B shape first")
    ap.add_argument("--profile", action="store_true", help="print a torch.profiler table of the first variant")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--probe-overlap", action="store_true",
                    help="after the variants, time the default plan without its optimizer update "
                    "(fb_only) and with the update on a side stream beside the next step "
                    "(overlap; overlap_priority: the steps on a high-priority stream): timing probes, recorded under `probes`, never the record's figures")
    ap.add_argument("--trainer-micro", default="1",
                    help="comma-separated micro-batch sizes for the Trainer baseline (accumulation "
                    "8 / micro); the fastest is the one compared (default %(default)s)")
    ap.add_argument("--out", required=True, help="JSON result file")
    ap.add_argument("--workdir", default="/tmp/multiplt-bench")
    args = ap.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = model_config(args.tiny)
    seq_len = 128 if args.tiny else SEQ_LEN
    n_params = new_model(config, "meta").num_parameters()
    global ATTN_FLOPS_PER_TOKEN
    ATTN_FLOPS_PER_TOKEN = 12 * config.n_layer * config.n_embd * seq_len
    data = packed_data(config.vocab_size, seq_len, BATCH * 16)
    print(f"device {torch.cuda.get_device_name() if device.type == 'cuda' else platform.processor()}, "
          f"N = {n_params:,} parameters, {BATCH} x {seq_len} tokens per step", flush=True)

    results, errors = [], {}
    master_check = check_master(device) if args.check_master else None
    attn_rows = attention_bench(device) if args.attention_bench and device.type == "cuda" else None
    variants = [v for v in args.variants.split(",") if v]
    default_info = None
    while variants:
        variant = variants.pop(0)
        if variant == "default":
            micro, compile_, default_info = default_plan(config, device)
            try:
                r = run_ours(config, data, args, device, n_params, micro, compile_)
                r.update(name="default (" + r["name"] + ")", plan=default_info, plain=True,
                         attention="sdpa (cudnn preferred)")
                results.append(r)
            except Exception as exc:
                errors[variant] = repr(exc)[:500]
                print(f"default: failed: {exc!r}"[:500], flush=True)
            reset_memory(device)
            continue
        flags = variant.lstrip("0123456789")
        micro, compile_ = int(variant[:len(variant) - len(flags)]), "f" if "f" in flags else ("c" if "c" in flags else "")
        try:
            # F: SDPA's FlashAttention-2 kernel instead of cuDNN's (PyTorch prefers cuDNN on Hopper)
            if device.type == "cuda":
                torch.backends.cuda.enable_cudnn_sdp("F" not in flags)
            from multiplt.training import gptbigcode

            gptbigcode.COMPILE_MODE = ("max-autotune-no-cudagraphs" if "A" in flags else
                                       "reduce-overhead" if "G" in flags else None)
            gptbigcode.COMPILE_OPTIONS = {"coordinate_descent_tuning": True} if "T" in flags else None
            results.append(run_ours(config, data, args, device, n_params, micro, compile_,
                                    fast="x" not in flags, attention="expand" if "E" in flags else "gqa",
                                    precision_="bf16-mixed" if "M" in flags else "auto"))
            results[-1]["attention"] = "sdpa (flash)" if "F" in flags else "sdpa (cudnn preferred)"
            # what `multiplt train` runs by default (M: --precision bf16-mixed, the autocast recipe)
            results[-1]["plain"] = not set(flags) & set("AGTEFfM")
        except torch.OutOfMemoryError as exc:  # a smaller card: halve the micro-batch and retry
            errors[variant] = f"out of memory: {exc}"[:300]
            print(f"ours {variant}: out of memory", flush=True)
            if micro > 1:
                variants.insert(0, f"{micro // 2}{flags}")
        except Exception as exc:  # record a failing variant (e.g. compilation) and go on
            errors[variant] = repr(exc)[:500]
            print(f"ours {variant}: failed: {exc!r}"[:500], flush=True)
        reset_memory(device)
    probes = []
    if args.probe_overlap and device.type == "cuda":
        micro, compile_, _ = default_plan(config, device)
        for mode in ("full", "fb_only", "overlap", "overlap_priority"):
            try:
                r = run_ours(config, data, args, device, n_params, micro, compile_, mode=mode)
                r.update(name=f"probe {mode} ({r['name']})", probe=mode)
                probes.append(r)
            except Exception as exc:
                errors[f"probe {mode}"] = repr(exc)[:500]
                print(f"probe {mode}: failed: {exc!r}"[:500], flush=True)
            reset_memory(device)
        ms = {r["probe"]: round(1000 * BATCH * data.shape[1] / r["tokens_per_s"], 2) for r in probes}
        print(json.dumps({"probe_step_ms": ms}), flush=True)
    if device.type == "cuda":
        torch.backends.cuda.enable_cudnn_sdp(True)  # PyTorch's default for the baseline
    baselines = []
    for m in ([] if args.skip_baseline else [int(x) for x in args.trainer_micro.split(",") if x]):
        try:
            baselines.append(run_baseline(config, data, args, device, n_params, micro=m))
        except torch.OutOfMemoryError as exc:
            errors[f"baseline micro{m}"] = f"out of memory: {exc}"[:300]
            print(f"baseline micro{m}: out of memory", flush=True)
        reset_memory(device)
    baseline = max(baselines, key=lambda r: r["tokens_per_s"]) if baselines else None
    best = pick_ours(results)
    default = next((r for r in results if r["name"].startswith("default")), None)
    record = {
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "commit": os.environ.get("BENCH_COMMIT") or _git_commit(),
        "device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu {platform.processor()}",
        "versions": versions(device),
        "card": card_info() if device.type == "cuda" else None,
        "model": "StarCoderBase-1B shape (gpt_bigcode, random init)" if not args.tiny else "tiny gpt_bigcode",
        "num_parameters": n_params, "seq_len": seq_len, "sequences_per_step": BATCH,
        "warmup_steps": args.warmup, "measured_steps": args.steps,
        "mfu_formula": "6 * num_parameters * tokens_per_s / 989e12",
        "mfu_with_attention_formula": "(6 * num_parameters + 12 * n_layer * n_embd * seq_len) * tokens_per_s / 989e12",
        "mfu_default": default["mfu"] if default else None,
        "mfu_default_with_attention": default["mfu_with_attention"] if default else None,
        "ratio_default_vs_trainer_best": (round(default["tokens_per_s"] / baseline["tokens_per_s"], 3)
                                          if default and baseline else None),
        "default": default, "default_plan": default_info,
        "baseline": baseline, "baselines": baselines, "ours": best, "variants": results, "errors": errors,
        "attention_kernels": attn_rows, "master_update_check": master_check, "probes": probes,
        "mfu": best["mfu"] if best else None,
        "ratio": round(best["tokens_per_s"] / baseline["tokens_per_s"], 3) if best and baseline else None,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(record, f, indent=1)
    print(json.dumps({k: record[k] for k in ("device", "mfu_default", "mfu_default_with_attention",
                                             "ratio_default_vs_trainer_best", "mfu", "ratio")}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
