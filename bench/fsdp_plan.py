"""The sharding plan of `multiplt train --distributed fsdp` for a GPTBigCode shape, on paper: the
model is built on the meta device (no memory) to count its parameters exactly, then per-GPU and
host memory follow from how the platform runs FSDP (multiplt/training/loop.py make_accelerator:
accelerate's FSDP1, FULL_SHARD, transformer-block wrapping, use_orig_params, bf16 mixed precision
over fp32 parameters, activation checkpointing per block, fused AdamW; micro-batch 1).

Per GPU, with N parameters on W GPUs:
  sharded fp32 parameters 4N/W, fp32 gradients 4N/W, AdamW moments 8N/W
  unsharded bf16 parameters: the root unit (embeddings, final LayerNorm; FSDP1 keeps the root
  gathered from forward to backward) plus two blocks (the one running and the one prefetched),
  and bf16 gradients of the root and one block before their reduce-scatter
  activations: each block's bf16 input (the checkpoints) + one block recomputed in backward
  (34 s d bytes: Korthikanti et al. 2022 without the attention-score term, as SDPA never stores
  the s x s scores) + logits and loss (bf16 logits, their fp32 copy and its gradient: 10 s V bytes)
  a fixed 3 GiB for the CUDA context, NCCL buffers and allocator slack (an assumption)
These are estimates; the benchmark (train_15b_fsdp.py) measures the real peak.
"""

from __future__ import annotations

GIB = 1024 ** 3
OVERHEAD_GIB = 3.0


def count_parameters(config) -> int:
    """Exact parameter count (tied LM head once), built on the meta device."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def block_parameters(config) -> int:
    d, inner = config.n_embd, config.n_inner or 4 * config.n_embd
    head = d // config.n_head
    kv = 2 * head if config.multi_query else 2 * d
    return (d * (d + kv) + d + kv) + (d * d + d) + (d * inner + inner) + (inner * d + d) + 4 * d


def plan(config, n: int, gpus: list[int], seq_len: int, batch_size: int, micro_batch: int = 1) -> dict:
    d, s, v, layers = config.n_embd, seq_len * micro_batch, config.vocab_size, config.n_layer
    block = block_parameters(config)
    root = n - layers * block
    if root <= 0:
        raise ValueError("the block parameter count does not fit the model's total")
    record = {"model": {"n_layer": layers, "n_embd": d, "n_head": config.n_head, "multi_query": config.multi_query,
                        "vocab_size": v, "n_positions": config.n_positions, "num_parameters": n,
                        "parameters_per_block": block, "parameters_outside_blocks": root},
              "recipe": {"seq_len": seq_len, "batch_size": batch_size, "micro_batch_size": micro_batch,
                         "gradient_checkpointing": True, "precision": "bf16-mixed (fp32 parameters)"},
              "assumptions": __doc__.split("Per GPU, ")[1].strip(), "per_gpu_count": {}}
    gb = 1e9
    for w in gpus:
        if batch_size % (micro_batch * w):
            continue
        g = {
            "fp32_parameters_shard": 4 * n / w, "fp32_gradients_shard": 4 * n / w, "adamw_moments_shard": 8 * n / w,
            "bf16_gathered_parameters": 2 * (root + 2 * block), "bf16_unsharded_gradients": 2 * (root + block),
            "activation_checkpoints": layers * s * d * 2, "recomputed_block": 34 * s * d, "logits_and_loss": 10 * s * v,
            "cuda_context_nccl_slack": OVERHEAD_GIB * GIB}
        total = sum(g.values())
        host = {
            # every process loads the whole model in fp32 before FSDP shards it onto its GPU
            "ram_gb_at_load": round((w * 4 * n + 2 * n) / gb, 1),
            "ram_gb_rank0_full_state_gather": round(6 * n / gb, 1),  # fp32 gathered + its bf16 copy
            "bf16_checkpoint_gb": round(2 * n / gb, 1), "training_state_gb": round(12 * n / gb, 1),
            # one run of 2 epochs: base + 2 bf16 checkpoints + 2 states (the older is deleted only
            # after the newer one is committed)
            "run_disk_gb_peak": round((2 * n + 4 * n + 24 * n) / gb, 1),
            # the bench (2 runs): everything in --work
            "work_disk_gb": round((2 * n + 2 * (4 * n + 24 * n)) / gb, 1),
            # --lean: the first run keeps only its final checkpoint
            "work_disk_gb_lean": round((2 * n + 2 * n + 4 * n + 24 * n) / gb, 1),
            # --state-dir: checkpoints in --work, states on the other filesystem (without --lean
            # the first run keeps both checkpoints and its last state)
            "work_disk_gb_checkpoints_only": round(10 * n / gb, 1), "state_dir_gb": round(36 * n / gb, 1),
            "work_disk_gb_lean_checkpoints_only": round(8 * n / gb, 1), "state_dir_gb_lean": round(24 * n / gb, 1)}
        tokens = batch_size * seq_len
        record["per_gpu_count"][str(w)] = {
            "gradient_accumulation": batch_size // (micro_batch * w),
            "gpu_gib": {k: round(x / GIB, 2) for k, x in g.items()}, "gpu_gib_total": round(total / GIB, 1),
            "host": host,
            "step_seconds_at_40pct_mfu_h200": round(6 * n * tokens / (w * 989.4e12 * 0.4), 2)}
    return record
