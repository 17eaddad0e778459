"""The speed settings `multiplt train` picks on its own: the micro-batch (sequences per forward
pass) and whether to compile. The recipe fixes what is computed (effective batch, optimizer,
precision); these only say how: micro_batch x accumulation x processes = batch_size always.

On a GPU the micro-batch is the largest divisor of the per-process batch whose estimated memory
fits in the card's free memory (bigger matmuls, fewer launches: bench/results/train_throughput.*),
and compile is on. On a CPU (tests, tiny models) micro-batch 1 and no compile, as before.
A recipe or flag that sets micro_batch_size (> 0) or compile (true/false) wins.
"""

from __future__ import annotations

import dataclasses

GIB = 2**30
# Bytes per parameter that live for the whole run, by precision: weights, gradients, optimizer
# state (bf16-master: bf16 weights 2 + bf16 grads 2 + fp32 master and moments 12 + flat grad 2;
# bf16-mixed: fp32 weights 4 + grads 4 + moments 8 + bf16 weight casts 2; fp32: 4 + 4 + 8).
STATIC_BYTES = {"bf16-master": 18, "bf16-mixed": 18, "bf16": 8, "fp32": 16}
# Activation bytes kept for backward per token per layer per hidden unit (no recomputation):
# ~34 in bf16 for a GPT block (Korthikanti et al. 2022, flash attention); the bf16-master 1B run
# peaked at 43 GiB with micro-batch 8 (static 19 GiB + 3 GiB per 2048-token sequence = 34.5).
ACT_BYTES = {"bf16-master": 36, "bf16-mixed": 44, "bf16": 36, "fp32": 72}
RESERVE = 0.88  # of the free memory; the rest for the allocator's fragmentation and workspaces
RESERVE_BYTES = 2 * GIB  # CUDA context, cuBLAS/cuDNN workspaces, compiled kernels


@dataclasses.dataclass(frozen=True)
class ModelShape:
    n_params: int
    n_layer: int
    hidden: int
    vocab: int


@dataclasses.dataclass(frozen=True)
class SpeedPlan:
    micro_batch: int
    grad_accum: int
    compile: bool
    reason: str


def estimate_bytes(shape: ModelShape, seq_len: int, micro: int, precision: str,
                   checkpointing: bool = False, shards: int = 1) -> int:
    """Peak GPU memory of one training step at this micro-batch (an estimate)."""
    static = shape.n_params * STATIC_BYTES.get(precision, 18) // shards
    per_token = ACT_BYTES.get(precision, 44) * shape.hidden * shape.n_layer
    if checkpointing:  # block inputs kept, one block's activations recomputed at a time
        per_token = 4 * shape.hidden * shape.n_layer + ACT_BYTES.get(precision, 44) * shape.hidden
    logits = 8 * shape.vocab  # logits and their gradient (fp32 upcast on transformers' forward)
    return static + micro * seq_len * (per_token + logits)


def plan(per_process_batch: int, seq_len: int, shape: ModelShape | None, free_bytes: int | None,
         precision: str, micro_batch: int = 0, compile: bool | None = None,
         checkpointing: bool = False, shards: int = 1) -> SpeedPlan:
    """Micro-batch, accumulation and compile for one process. free_bytes None = no GPU (CPU).
    micro_batch > 0 and compile not None are the user's choices and are kept."""
    on_gpu = free_bytes is not None
    if compile is None:
        compile = on_gpu and shards == 1  # compiled blocks are not tried under FSDP
    if micro_batch > 0:
        reason = "set by the recipe or a flag"
    elif not on_gpu or shape is None:
        micro_batch, reason = 1, "no GPU: one sequence per forward"
    else:
        budget = free_bytes * RESERVE - RESERVE_BYTES
        fits = [m for m in _divisors(per_process_batch)
                if estimate_bytes(shape, seq_len, m, precision, checkpointing, shards) <= budget]
        micro_batch = max(fits, default=1)
        need = estimate_bytes(shape, seq_len, micro_batch, precision, checkpointing, shards)
        reason = (f"largest divisor of {per_process_batch} sequences per process whose estimated "
                  f"{need / GIB:.1f} GiB fits in {free_bytes / GIB:.1f} GiB free")
    if per_process_batch % micro_batch:
        from multiplt.errors import MultipltError

        raise MultipltError(f"{per_process_batch} sequences per process is not a multiple of "
                            f"micro_batch_size {micro_batch}")
    return SpeedPlan(micro_batch, per_process_batch // micro_batch, bool(compile), reason)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def model_shape(model) -> ModelShape:
    c = model.config
    return ModelShape(n_params=model.num_parameters(),
                      n_layer=getattr(c, "n_layer", None) or getattr(c, "num_hidden_layers", 1),
                      hidden=getattr(c, "n_embd", None) or getattr(c, "hidden_size", 1),
                      vocab=getattr(c, "vocab_size", 1))


def free_gpu_bytes(device) -> int | None:
    """Free memory of this process's GPU (None on a CPU)."""
    import torch

    if getattr(device, "type", str(device)) != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    return int(free)


def plan_for(config, model, device, precision: str, world: int, saved_micro: int = 0) -> SpeedPlan:
    """The plan for a `multiplt train` run: `config` a TrainConfig, `model` the loaded model (its
    shape; call this before the model is moved to the GPU, so the free memory is the card's),
    `saved_micro` the micro-batch an interrupted run used (kept on resume)."""
    return plan(config.batch_size // world, config.seq_len, model_shape(model), free_gpu_bytes(device),
                precision, micro_batch=config.micro_batch_size or saved_micro, compile=config.compile,
                checkpointing=config.gradient_checkpointing,
                shards=world if config.distributed == "fsdp" else 1)
