"""GPU generation throughput: `multiplt generate`'s code path against transformers `generate`.

Model: StarCoderBase-1B-shaped GPTBigCode (24 layers, hidden 2048, 16 heads, multi-query
attention, vocabulary 49152), random weights in bf16 (no pretrained weights are reachable).
Requests: random token ids with the Racket HumanEval prompts' token lengths
(bench/inputs/rkt_prompt_tokens.json, see bench/prompt_lengths.py), --samples per problem, the
first --problems problems; every variant runs on these same requests, in one process:

  hf_batch40: transformers `generate` in batches of 40 in MultiPL-E order (each problem's
              samples consecutive), left padding, dynamic cache, sdpa, do_sample, top_p 0.95,
              exactly --new-tokens tokens (min_new_tokens = max_new_tokens);
  hf_best:    the same at the largest batch that fits (tried from all requests down, halving);
  default:    multiplt.generation.continuous.sample_continuous as the transformers backend calls
              it (default settings: in-flight count from free memory, EOS and Racket stop
              strings on, checked every 16 steps); for this multi-query model that is the slot
              engine (static_kv.py: static KV cache, decode steps replayed from CUDA graphs, the
              graphs captured inside the timed run as in `multiplt generate`); a random model
              rarely stops, and only tokens actually generated are counted;
  forced:     the same with EOS and stops off: exactly --new-tokens tokens per request;
  forced_without_kernels (or forced_with_kernels where they are off, see --kernels): forced with
              the Triton decode kernels (decode_kernels.ENABLED: without them SDPA decode
              attention and the torch float64 normalizer) and the sampler's top-k over the
              half-precision logits (sampler.HALF_TOPK) switched the other way;
              forced_kernels_speedup = with / without.
  --variants fused_gather (CUDA): forced once more with each switch
              turned the other way (sampler.FUSED_GATHER),
              after a warm-up with it; forced_<variant>_vs_forced = its tokens/s over forced's,
              forced_<variant>_same_tokens = whether its tokens equal forced's (tokens_sha1: a
              digest of every request's tokens). --variant-repeats R: R runs of the variant,
              each followed by one of the default (the switch back), the medians compared
              (forced_<variant>_repeats); the spread between forced runs is about 0.3%.

decode_limit: tokens/s if every step only read the weights plus the live rows' KV cache once
(average prompt + half the new tokens) at the bandwidth measured in-script with a device-to-device
copy; fraction_of_decode_limit = forced / that. compute_limit: tokens/s if every step ran its
FLOPs at the card's dense bf16 peak (989 TFLOP/s); fraction_of_roofline = forced / the lower of
the two limits. Greedy: our greedy tokens (64 a prompt) against `generate(do_sample=False)`,
one prompt at a time (bf16 on the GPU). greedy_random_weights: on the random model and
--greedy-prompts of the random prompts. Its logits are nearly flat, so rounding flips argmaxes and
transformers disagrees with itself (hf_batched_equal_to_hf_single). greedy_trained: the same model
after --greedy-train-steps AdamW steps (8 x 1024 bytes each) on the bytes of Python's stdlib
(tokens 1-256), on 4 held-out stdlib files (200 bytes each); greedy_matches_hf and the fields beside
it are this check's where it ran. margins_at_first_difference: transformers' gap between its two
best logits where ours first differs. greedy_fp32: the last check once more with the model in fp32
(rounding 2**16 times finer: tells a numerics difference from a wrong computation). card (CUDA): the driver, power limit and clocks
nvidia-smi reports before the runs (H100s differ from machine to machine by a few percent).

    python bench/generate_throughput.py --out bench/results/generate_throughput.json   # GPU
    python bench/generate_throughput.py --tiny                                          # CPU smoke
Imports only torch, transformers and this package's generation code (and runs nvidia-smi on a GPU).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pathlib
import platform
import statistics
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import transformers  # noqa: E402

from multiplt.generation import decode_kernels, mqa_attention, sampler, static_kv  # noqa: E402
from multiplt.generation.continuous import Job, inflight_limit, sample_continuous  # noqa: E402
from multiplt.generation.sampler import SamplerOptions  # noqa: E402

STOPS = ("\n(define ", "\n#|", "\n;", "\n(")  # Racket's stop strings
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


def run_ours(model, prompts, new_tokens, device, forced: bool, max_batch=None) -> dict:
    """sample_continuous as hf_backend calls it; `forced`: EOS and stop strings off."""
    jobs = [Job(i, p, i, new_tokens) for i, p in enumerate(prompts)]
    opts = SamplerOptions(temperature=0.2, top_p=0.95, max_new_tokens=new_tokens, eos_token_id=0,
                          pad_token_id=0, ignore_eos=forced, stop=() if forced else STOPS)
    # a printable character per token id, a newline for ids below 32: Racket stops can occur
    decode = (lambda ids: "".join("\n" if t < 32 else chr(32 + t % 95) for t in ids))
    counted, finished, out = 0, 0, {}
    sync(device)
    start = time.perf_counter()
    for group in sample_continuous(model, jobs, opts, max_batch=max_batch, decode=decode):
        counted += sum(len(toks) for _, toks in group)
        finished += len(group)
        out.update(group)
    sync(device)
    secs = time.perf_counter() - start
    digest = hashlib.sha1(json.dumps(sorted(out.items())).encode()).hexdigest()
    cap = inflight_limit(model, max(map(len, prompts)), new_tokens, max_batch)
    return {"sequences": finished, "new_tokens": counted, "seconds": round(secs, 2),
            "tokens_per_s": round(counted / secs, 1), "inflight_limit": cap,
            "stops": [] if forced else list(STOPS), "eos": not forced, "tokens_sha1": digest}


def hf_largest_batch(model, prompts, new_tokens, device) -> dict:
    batch = len(prompts)
    while True:
        try:
            return run_baseline(model, prompts, new_tokens, batch, device)
        except torch.OutOfMemoryError:
            if batch <= 40:
                raise
            torch.cuda.empty_cache()
            batch //= 2


def bandwidth(device) -> float | None:
    """Bytes per second of a device-to-device copy (read + written) of 4 GiB."""
    if device != "cuda":
        return None
    x = torch.empty(2**31, dtype=torch.bfloat16, device=device)
    y = torch.empty_like(x)
    y.copy_(x)
    sync(device)
    start = time.perf_counter()
    for _ in range(10):
        y.copy_(x)
    sync(device)
    secs = (time.perf_counter() - start) / 10
    del x, y
    torch.cuda.empty_cache()
    return 2 * 2**32 / secs


def decode_limit(model, config, prompts, new_tokens, rows: int, bw: float) -> float:
    from multiplt.generation.continuous import kv_bytes_per_token

    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    rows = min(rows, len(prompts))
    avg_len = sum(map(len, prompts)) / len(prompts) + new_tokens / 2
    per_step = weights + rows * avg_len * kv_bytes_per_token(config, 2)
    return rows * bw / per_step


CARD_FIELDS = ("driver_version", "power.limit", "clocks.max.sm", "clocks.max.memory", "clocks.sm", "clocks.mem",
               "temperature.gpu")


def card_info() -> dict:
    """The card's power limit and clocks as nvidia-smi reports them before the runs: cards of one
    model differ from machine to machine (generate_throughput.notes.md, twelfth session)."""
    query = ["nvidia-smi", f"--query-gpu={','.join(CARD_FIELDS)}", "--format=csv,noheader",
             f"--id={torch.cuda.current_device()}"]
    try:
        line = subprocess.run(query, capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError) as err:
        return {"error": f"{type(err).__name__}: {err}"}
    return dict(zip(CARD_FIELDS, (v.strip() for v in line.split(","))))


# --variants: name -> (module, switch) turned the other way for one more forced run
VARIANTS = {"fused_gather": (sampler, "FUSED_GATHER")}


PEAK_BF16_FLOPS = 989e12  # H100 SXM / H200 dense bf16 (as bench/train_throughput.py's MFU)


def compute_limit(model, config, prompts, new_tokens) -> float:
    """tokens/s if every step ran its FLOPs at the card's dense bf16 peak: 2 per matmul weight
    per token (the tied LM head included, position embeddings not) plus attention's
    4 x layers x key length x width (QK and AV at the average key length)."""
    weights = sum(p.numel() for n, p in model.named_parameters() if "wpe" not in n)
    avg_len = sum(map(len, prompts)) / len(prompts) + new_tokens / 2
    per_token = 2 * weights + 4 * config.n_layer * avg_len * config.n_embd
    return PEAK_BF16_FLOPS / per_token


def greedy_check(model, prompts, new_tokens) -> dict:
    """Our greedy tokens (slot engine, one row) against `generate` one prompt at a time; also
    `generate` on all prompts as one left-padded batch against `generate` one at a time (how far
    transformers agrees with itself when only the kernels' shapes change). Where ours first
    differs, `margins_at_first_difference` gives transformers' own gap between its two best
    logits at that step: a gap within bf16 rounding is a near-tie, not a wrong computation."""
    same = hf_same = 0
    matched_tokens = total = 0
    margins = []
    opts = SamplerOptions(temperature=0.0, max_new_tokens=new_tokens, eos_token_id=None, pad_token_id=0)
    jobs = [Job(i, p, i, new_tokens) for i, p in enumerate(prompts)]
    ours = {k: t for g in sample_continuous(model, jobs, opts, max_batch=1) for k, t in g}
    width = max(map(len, prompts))
    ids = torch.zeros((len(prompts), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, p in enumerate(prompts):
        ids[r, width - len(p):], mask[r, width - len(p):] = torch.tensor(p), 1
    with torch.inference_mode():
        batched = model.generate(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                                 do_sample=False, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                 pad_token_id=0, eos_token_id=None)[:, width:].tolist()
    for i, p in enumerate(prompts):
        ids = torch.tensor([p], device=model.device)
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=0,
                                 eos_token_id=None, output_logits=True, return_dict_in_generate=True)
        ref = out.sequences[0, len(p):].tolist()
        same += ref == ours[i]
        hf_same += ref == batched[i]
        prefix = next((j for j, (a, b) in enumerate(zip(ref, ours[i])) if a != b), len(ref))
        matched_tokens, total = matched_tokens + prefix, total + len(ref)
        if prefix < len(ref):
            top2 = out.logits[prefix][0].float().topk(2).values
            margins.append(round(float(top2[0] - top2[1]), 4))
    return {"greedy_matches_hf": same == len(prompts), "prompts": len(prompts), "equal": same,
            "tokens_before_first_difference": matched_tokens, "tokens": total,
            "hf_batched_equal_to_hf_single": hf_same, "margins_at_first_difference": margins}


def text_ids(paths, limit: int) -> list[int]:
    """Bytes of the given text files as token ids 1-256 (0 is EOS/padding), up to `limit`."""
    ids: list[int] = []
    for path in paths:
        ids += [b + 1 for b in path.read_bytes()[: limit - len(ids)]]
        if len(ids) >= limit:
            break
    return ids


def train_briefly(model, steps: int, rows: int, seq: int, device: str) -> dict:
    """A few hundred AdamW steps on the bytes of Python's own standard library, so that the model
    predicts with margins like a trained model's: random weights give nearly flat logits, where
    any rounding difference between two correct implementations flips an argmax (transformers
    in bf16 then disagrees with itself, batched against one at a time). Returns the held-out
    prompts (other stdlib files) and the loss curve's ends."""
    import os

    files = sorted(pathlib.Path(os.__file__).parent.glob("*.py"))
    train_files, held_out = files[: -8], files[-8:]
    data = torch.tensor(text_ids(train_files, steps * rows * seq + seq), dtype=torch.long)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3 if device == "cpu" else 3e-4, weight_decay=0.0)
    gen = torch.Generator().manual_seed(2)
    model.train()
    losses = []
    start = time.perf_counter()
    for _ in range(steps):
        at = torch.randint(0, len(data) - seq, (rows,), generator=gen)
        x = torch.stack([data[a: a + seq] for a in at.tolist()]).to(device)
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss))
    model.eval()
    del opt
    prompts = [text_ids([f], 400)[-200:] for f in held_out[::2]]
    return {"steps": steps, "rows": rows, "seq_len": seq, "data": "bytes of Python's stdlib *.py files",
            "loss_first": round(losses[0], 3), "loss_last": round(sum(losses[-10:]) / len(losses[-10:]), 3),
            "seconds": round(time.perf_counter() - start, 1), "prompts": prompts}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="CPU smoke test: tiny model and shapes")
    ap.add_argument("--problems", type=int, default=32, help="first N problems x --samples = the requests")
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--new-tokens", type=int, default=512)
    ap.add_argument("--greedy-prompts", type=int, default=4)
    ap.add_argument("--greedy-train-steps", type=int, default=300,
                    help="after the throughput runs, train the model this many steps on text and run "
                         "the greedy check again on held-out text (0: only the random-weights check)")
    ap.add_argument("--skip-hf40", action="store_true")
    ap.add_argument("--skip-hf", action="store_true", help="no transformers baselines (debugging ours)")
    ap.add_argument("--kernels", choices=("default", "on", "off"), default="default",
                    help="the Triton decode kernels and the half-precision top-k for the default and "
                         "forced runs (decode_kernels.ENABLED, sampler.HALF_TOPK); the other setting "
                         "is measured too, forced")
    ap.add_argument("--attn-tile", help="BLOCK_N,NUM_WARPS,NUM_STAGES of the attention kernel (default: "
                                        "decode_kernels' constants), e.g. from bench/profile_slots.py's sweep")
    ap.add_argument("--variants", default="",
                    help=f"comma-separated (CUDA): forced once more with each switch turned the other way "
                         f"({', '.join(VARIANTS)})")
    ap.add_argument("--variant-repeats", type=int, default=1,
                    help="forced runs per variant; above 1 each alternates with a forced run of the default "
                         "and the medians are compared")
    ap.add_argument("--out", help="write the results JSON here")
    args = ap.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        ap.error(f"unknown --variants {', '.join(unknown)} (known: {', '.join(VARIANTS)})")
    if args.variant_repeats < 1:
        ap.error("--variant-repeats must be at least 1")
    if variants and args.kernels == "off":
        ap.error("--variants switch paths of the decode kernels: not with --kernels off")
    if args.attn_tile:
        decode_kernels.BLOCK_N, decode_kernels.NUM_WARPS, decode_kernels.NUM_STAGES = map(int, args.attn_tile.split(","))
    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    if args.kernels != "default":
        decode_kernels.ENABLED = sampler.HALF_TOPK = args.kernels == "on"
    if args.tiny:
        args.problems, args.samples, args.new_tokens = 2, 4, 8
    model, config = make_model(args.tiny, device)
    scale = 0.1 if args.tiny else 1.0
    prompts = make_prompts(args.problems, args.samples, config.vocab_size, scale)
    result = {"command": " ".join([pathlib.Path(sys.executable).name] + sys.argv),
              "commit": _commit(),
              "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
              "versions": {"python": platform.python_version(), "torch": torch.__version__,
                           "transformers": transformers.__version__,
                           "cuda": torch.version.cuda if device == "cuda" else None},
              "model": {"n_layer": config.n_layer, "n_embd": config.n_embd, "n_head": config.n_head,
                        "vocab_size": config.vocab_size, "multi_query": True,
                        "dtype": "bfloat16" if device == "cuda" else "float32", "weights": "random"},
              "prompt_lengths": json.loads(LENGTHS.read_text())["source"],
              "requests": len(prompts), "new_tokens_per_sequence": args.new_tokens,
              # whether the runs below use the kernels (the switch, and whether they serve here)
              "decode_kernels": decode_kernels.available(torch.device(device), model.dtype),
              "half_topk": sampler.HALF_TOPK and device == "cuda",
              "attn_tile": {"block_n": decode_kernels.BLOCK_N, "num_warps": decode_kernels.NUM_WARPS,
                            "num_stages": decode_kernels.NUM_STAGES}}
    if device == "cuda":
        result["card"] = card_info()

    def save():
        text = json.dumps(result, indent=2)
        if args.out:
            pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            pathlib.Path(args.out).write_text(text + "\n")
        return text

    print(f"device {result['device']}; {len(prompts)} requests", flush=True)
    bw = bandwidth(device)
    result["bandwidth_bytes_per_s"] = bw
    # transformers first, on stock sdpa attention (warm-up: CUDA context, cuBLAS, sdpa kernels)
    run_baseline(model, prompts[:4], 4, 4, device)
    if not args.skip_hf40 and not args.skip_hf:
        result["hf_batch40"] = run_baseline(model, prompts, args.new_tokens, 40, device)
        print("hf_batch40", result["hf_batch40"], flush=True)
        save()
    if not args.skip_hf:
        result["hf_best"] = hf_largest_batch(model, prompts, args.new_tokens, device)
        print("hf_best", result["hf_best"], flush=True)
        save()
    if device == "cuda":
        torch.cuda.empty_cache()
    result["attention"] = "multiplt_mqa" if mqa_attention.enable(model) else "sdpa"  # as hf_backend
    result["engine"] = ("slots: static KV cache" + (", CUDA graphs" if device == "cuda" else "")
                        if static_kv.supported(model) else "transformers forward and cache")
    run_ours(model, prompts[:8], 4, device, forced=True)  # warm-up
    result["default"] = run_ours(model, prompts, args.new_tokens, device, forced=False)
    print("default", result["default"], flush=True)
    result["forced"] = run_ours(model, prompts, args.new_tokens, device, forced=True)
    print("forced", result["forced"], flush=True)
    if device == "cuda":
        # the same forced run with the decode speed-ups switched the other way: the Triton
        # kernels (decode_kernels.py: SDPA decode attention and the torch float64 normalizer
        # without them) and the sampler's top-k over the half-precision logits (HALF_TOPK)
        default = decode_kernels.ENABLED, sampler.HALF_TOPK
        name = "forced_without_kernels" if default[0] else "forced_with_kernels"
        decode_kernels.ENABLED, sampler.HALF_TOPK = not default[0], not default[1]
        try:
            result[name] = run_ours(model, prompts, args.new_tokens, device, forced=True)
        finally:
            decode_kernels.ENABLED, sampler.HALF_TOPK = default
        print(name, result[name], flush=True)
        with_, without = ((result["forced"], result[name]) if default[0] else (result[name], result["forced"]))
        result["forced_kernels_speedup"] = round(with_["tokens_per_s"] / without["tokens_per_s"], 3)
    if device == "cuda":
        for variant in variants:  # each switch alone, the others as they are
            module, name = VARIANTS[variant]
            default = getattr(module, name)

            def forced_with(value, requests=prompts, new_tokens=args.new_tokens):
                setattr(module, name, value)
                try:
                    return run_ours(model, requests, new_tokens, device, forced=True)
                finally:
                    setattr(module, name, default)

            forced_with(not default, prompts[:8], 4)  # warm-up: its kernels compile here
            # --variant-repeats > 1: the variant and the default alternate, so that drift of the
            # card (clocks, temperature) falls on both; medians compared
            runs = {"variant": [], "default": []}
            for _ in range(args.variant_repeats):
                runs["variant"].append(forced_with(not default))
                if args.variant_repeats > 1:
                    runs["default"].append(forced_with(default))
            result[f"forced_{variant}"] = runs["variant"][0]
            print(f"forced_{variant}", runs["variant"][0], flush=True)
            same = all(r["tokens_sha1"] == result["forced"]["tokens_sha1"] for r in runs["variant"] + runs["default"])
            result[f"forced_{variant}_same_tokens"] = same
            if args.variant_repeats > 1:
                rates = {k: sorted(r["tokens_per_s"] for r in v) for k, v in runs.items()}
                median = {k: statistics.median(v) for k, v in rates.items()}
                result[f"forced_{variant}_repeats"] = {"tokens_per_s": rates, "median": median}
                result[f"forced_{variant}_vs_forced"] = round(median["variant"] / median["default"], 4)
            else:
                result[f"forced_{variant}_vs_forced"] = round(
                    runs["variant"][0]["tokens_per_s"] / result["forced"]["tokens_per_s"], 3)
    if "hf_best" in result:
        result["default_vs_hf_best"] = round(result["default"]["tokens_per_s"] / result["hf_best"]["tokens_per_s"], 2)
        result["forced_vs_hf_best"] = round(result["forced"]["tokens_per_s"] / result["hf_best"]["tokens_per_s"], 2)
    if "hf_batch40" in result:
        result["default_vs_hf_batch40"] = round(result["default"]["tokens_per_s"] / result["hf_batch40"]["tokens_per_s"], 2)
    if bw:
        limit = decode_limit(model, config, prompts, args.new_tokens, result["forced"]["inflight_limit"], bw)
        result["decode_limit_tokens_per_s"] = round(limit, 1)
        result["fraction_of_decode_limit"] = round(result["forced"]["tokens_per_s"] / limit, 4)
        # at hundreds of rows a step is bound by its FLOPs before its bytes: the roofline is
        # the lower of the two limits
        flops_limit = compute_limit(model, config, prompts, args.new_tokens)
        result["compute_limit_tokens_per_s"] = round(flops_limit, 1)
        result["fraction_of_roofline"] = round(result["forced"]["tokens_per_s"] / min(limit, flops_limit), 4)
    save()
    greedy_prompts = prompts[:: max(1, len(prompts) // max(1, args.greedy_prompts))][: args.greedy_prompts]
    new_greedy = min(64, args.new_tokens)
    if greedy_prompts:  # --greedy-prompts 0: no greedy check
        # random weights, random prompts: the check the earlier records hold
        result["greedy_random_weights"] = greedy_check(model, greedy_prompts, new_greedy)
        result.update(result["greedy_random_weights"])
        save()
    if greedy_prompts and args.greedy_train_steps > 0:
        # the same model trained briefly, held-out text as prompts: the greedy_matches_hf the
        # record keeps (a trained model's margins; see train_briefly)
        if device == "cuda":
            torch.cuda.empty_cache()
        trained = train_briefly(model, args.greedy_train_steps, 8, 64 if args.tiny else 1024, device)
        text_prompts = trained.pop("prompts")
        result["greedy_trained"] = {**greedy_check(model, text_prompts, new_greedy), "training": trained}
        result.update({k: result["greedy_trained"][k] for k in
                       ("greedy_matches_hf", "prompts", "equal", "tokens_before_first_difference", "tokens",
                        "hf_batched_equal_to_hf_single", "margins_at_first_difference")})
        result["greedy_weights"] = "trained briefly (greedy_trained)"
        save()
    if device == "cuda":
        result["max_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
        save()
        if greedy_prompts:
            prompts_fp32 = text_prompts if "greedy_trained" in result else greedy_prompts
            result["greedy_fp32"] = greedy_check(model.float(), prompts_fp32, new_greedy)
    print(save())


def _commit() -> str | None:
    import os
    import subprocess

    if os.environ.get("BENCH_COMMIT"):  # a copy of the tree without .git (the device machine)
        return os.environ["BENCH_COMMIT"]
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=pathlib.Path(__file__).parent,
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


if __name__ == "__main__":
    main()
