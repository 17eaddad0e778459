"""One optimizer step and the eval loss: the hot path of training, shared by `multiplt train` and
the GPU benchmark (bench/train_throughput.py). Only torch and accelerate here."""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from multiplt.training import gptbigcode


def setup_forward(model, config, attention: str = "gqa") -> str | None:
    """Before accelerate wraps `model`: give it multiplt's own training forward
    (multiplt/training/gptbigcode.py: no per-step host sync, compiled blocks with `compile`, LM head
    fused with the loss) where it applies. Returns why not (None when installed): another
    architecture, `fast_forward: false`, FSDP (its wrapped blocks keep transformers' forward) or
    gradient checkpointing."""
    if not config.fast_forward:
        return "fast_forward is off"
    if config.distributed == "fsdp":
        return "FSDP uses transformers' forward"
    if config.gradient_checkpointing:
        return "gradient checkpointing uses transformers' forward"
    reason = gptbigcode.unsupported(model)
    if reason is None:
        gptbigcode.install(model, compile=config.compile, attention=attention)
    return reason


def compile_blocks(model: torch.nn.Module, whole: bool = False) -> torch.nn.Module:
    """torch.compile each transformer block on its own ("regional" compilation): every block has
    the same shape, so one compiled graph serves all of them and compiling takes seconds, not the
    minutes a whole unrolled model takes. Elementwise work (LayerNorm, GELU, residual adds, bias)
    fuses into few kernels, which is most of what compilation buys a model of this size."""
    blocks = None if whole else _find_blocks(model)
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


def causal_lm_loss(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy (the same value as transformers' loss with labels=input_ids):
    position t predicts token t+1; the math is fp32 whatever the logits' dtype."""
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), input_ids[:, 1:].flatten())


_compiled_loss = None


def lm_loss(model, batch: torch.Tensor, compiled: bool = False) -> torch.Tensor:
    """The model's next-token loss on `batch`. Compiled, the loss is one fused pass over the bf16
    logits (8 x 2048 x 49152 for StarCoderBase) instead of an fp32 copy and several passes over it
    (created on first use: importing the compiler takes seconds)."""
    global _compiled_loss
    if gptbigcode.installed(model):
        return model(input_ids=batch, multiplt_loss=True)
    logits = model(input_ids=batch, use_cache=False).logits
    if not compiled:
        return causal_lm_loss(logits, batch)
    if _compiled_loss is None:
        _compiled_loss = torch.compile(causal_lm_loss)
    return _compiled_loss(logits, batch)


def train_step(model, optimizer, scheduler, micro_batches: list[torch.Tensor], accelerator,
               max_grad_norm: float, compiled: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step over this process's micro-batches (gradient accumulation): gradients are
    synchronized across processes only on the last micro-batch. Every sequence has the same
    length, so the mean of per-micro-batch mean losses is the token mean over the whole batch.
    Returns (mean loss, gradient norm before clipping) as tensors (no host sync here)."""
    total = torch.zeros((), device=accelerator.device)
    inner = getattr(optimizer, "optimizer", optimizer)
    accumulate = getattr(inner, "accumulate", None)  # MasterAdamW sums micro-batch gradients in fp32
    for i, batch in enumerate(micro_batches):
        last = i == len(micro_batches) - 1
        with contextlib.nullcontext() if last else accelerator.no_sync(model):
            loss = lm_loss(model, batch, compiled) / len(micro_batches)
            accelerator.backward(loss)
        if accumulate is not None and not last:
            accumulate()
        total += loss.detach()
    norm = clip_grad_norm(model, optimizer, accelerator, max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return total, norm


def clip_grad_norm(model, optimizer, accelerator, max_norm: float) -> torch.Tensor:
    """Clip the gradients to total norm `max_norm`; returns the norm before clipping. With a fused
    AdamW on one device (single GPU or DDP, not FSDP) the scaling happens inside the optimizer's
    kernel (its `grad_scale` input, which divides each gradient as it is read), saving a separate
    read-modify-write pass over all fp32 gradients; the result is torch's clip_grad_norm_ (the same
    coefficient, max_norm / (norm + 1e-6) clamped to 1), up to rounding of one division."""
    inner = getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer
    if hasattr(inner, "clip_grad_norm"):  # MasterAdamW (bf16-master): norm of its flat gradients
        return inner.clip_grad_norm(max_norm)
    fused = (isinstance(inner, torch.optim.Adam | torch.optim.AdamW) and inner.defaults.get("fused")
             and accelerator.distributed_type.value != "FSDP"
             and getattr(accelerator, "scaler", None) is None)  # fp16's GradScaler sets grad_scale itself
    if not fused:
        return accelerator.clip_grad_norm_(model.parameters(), max_norm)
    grads = [p.grad for group in inner.param_groups for p in group["params"] if p.grad is not None]
    if len({g.device for g in grads}) != 1:
        return accelerator.clip_grad_norm_(model.parameters(), max_norm)
    norm = torch.nn.utils.get_total_norm(grads, 2.0, foreach=True)
    coef = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    inner.grad_scale = coef.reciprocal().to(torch.float32)  # read by the next optimizer.step()
    return norm


@torch.no_grad()
def evaluate(model, sequences: torch.Tensor, micro_batch_size: int, accelerator) -> float | None:
    """Mean token loss over the held-out sequences, split across processes; None without any."""
    if sequences.shape[0] == 0:
        return None
    model.eval()
    mine = sequences[accelerator.process_index::accelerator.num_processes]
    sums = torch.zeros(2, device=accelerator.device, dtype=torch.float64)
    # Every process runs the same number of forwards (FSDP gathers parameters in each, DDP may
    # broadcast buffers): a process with fewer held-out sequences runs one with weight 0.
    per_process = -(-sequences.shape[0] // accelerator.num_processes)
    for start in range(0, per_process, micro_batch_size):
        batch = mine[start:start + micro_batch_size]
        weight = batch.shape[0]
        loss = lm_loss(model, (batch if weight else sequences[:1]).to(accelerator.device))
        sums[0] += loss.double() * weight
        sums[1] += weight
    model.train()
    sums = accelerator.reduce(sums, reduction="sum")
    return float(sums[0] / sums[1])


class LaggedMetrics:
    """Reads each step's scalar metrics one step late, so the host never waits for the GPU to
    drain between steps (a per-step `.item()` leaves the GPU idle while the host launches the next
    step's first kernels). The device-to-host copies are queued behind the step that made them;
    they are read after the next step has been queued."""

    def __init__(self):
        self.pending = None

    def push(self, info: dict, **tensors: torch.Tensor) -> dict | None:
        """Queue this step's tensors; return the previous step's metrics (info + floats) if any."""
        host = {k: v.detach().to("cpu", non_blocking=True) for k, v in tensors.items()}
        event = None
        if any(v.is_cuda for v in tensors.values()):
            event = torch.cuda.Event()
            event.record()
        ready, self.pending = self.pending, (info, host, event)
        return self._read(ready)

    def flush(self) -> dict | None:
        ready, self.pending = self.pending, None
        return self._read(ready)

    @staticmethod
    def _read(item) -> dict | None:
        if item is None:
            return None
        info, host, event = item
        if event is not None:
            event.synchronize()
        return {**info, **{k: float(v) for k, v in host.items()}}
