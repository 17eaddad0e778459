"""One optimizer step and the eval loss: the hot path of training, shared by `multiplt train` and
the GPU benchmark (bench/train_throughput.py). Only torch and accelerate here."""

from __future__ import annotations

import contextlib

import torch


def compile_blocks(model: torch.nn.Module) -> torch.nn.Module:
    """torch.compile each transformer block on its own ("regional" compilation): every block has
    the same shape, so one compiled graph serves all of them and compiling takes seconds, not the
    minutes a whole unrolled model takes. Elementwise work (LayerNorm, GELU, residual adds, bias)
    fuses into few kernels, which is most of what compilation buys a model of this size."""
    blocks = _find_blocks(model)
    if blocks is None:
        return torch.compile(model)
    for block in blocks:
        block.compile()
    return model


def _find_blocks(model: torch.nn.Module):
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > 1 and \
                len({type(m) for m in module}) == 1:
            return module
    return None


def train_step(model, optimizer, scheduler, micro_batches: list[torch.Tensor], accelerator,
               max_grad_norm: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step over this process's micro-batches (gradient accumulation): gradients are
    synchronized across processes only on the last micro-batch. Every sequence has the same
    length, so the mean of per-micro-batch mean losses is the token mean over the whole batch.
    Returns (mean loss, gradient norm before clipping) as tensors (no host sync here)."""
    total = torch.zeros((), device=accelerator.device)
    for i, batch in enumerate(micro_batches):
        last = i == len(micro_batches) - 1
        with contextlib.nullcontext() if last else accelerator.no_sync(model):
            loss = model(input_ids=batch, labels=batch, use_cache=False).loss / len(micro_batches)
            accelerator.backward(loss)
        total += loss.detach()
    norm = accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return total, norm


@torch.no_grad()
def evaluate(model, sequences: torch.Tensor, micro_batch_size: int, accelerator) -> float | None:
    """Mean token loss over the held-out sequences, split across processes; None without any."""
    if sequences.shape[0] == 0:
        return None
    model.eval()
    mine = sequences[accelerator.process_index::accelerator.num_processes]
    sums = torch.zeros(2, device=accelerator.device, dtype=torch.float64)
    for start in range(0, mine.shape[0], micro_batch_size):
        batch = mine[start:start + micro_batch_size].to(accelerator.device)
        loss = model(input_ids=batch, labels=batch, use_cache=False).loss
        sums[0] += loss.double() * batch.shape[0]
        sums[1] += batch.shape[0]
    model.train()
    sums = accelerator.reduce(sums, reduction="sum")
    return float(sums[0] / sums[1])
