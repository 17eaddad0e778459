"""AdamW with the paper's weight-decay rule and the warmup + cosine learning-rate schedule.

Only torch here, so the GPU benchmark can import it on a bare image.
"""

from __future__ import annotations

import math

import torch


def decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Two parameter groups: weights decay, biases and normalization weights do not (the rule of
    the transformers Trainer the paper used: bias and LayerNorm parameters get weight decay 0)."""
    no_decay: set[int] = set()
    for module in model.modules():
        is_norm = "norm" in type(module).__name__.lower()
        for name, param in module.named_parameters(recurse=False):
            if is_norm or name.endswith("bias"):
                no_decay.add(id(param))
    decay, plain = [], []
    for param in model.parameters():
        if param.requires_grad:
            (plain if id(param) in no_decay else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": plain, "weight_decay": 0.0}]


def build_optimizer(model: torch.nn.Module, lr: float, weight_decay: float,
                    betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                    master_weights: bool = False) -> torch.optim.Optimizer:
    """AdamW with the paper's weight-decay groups. master_weights (precision bf16-master): call
    with the model still fp32; the optimizer keeps fp32 master weights and moments and casts the
    model's parameters to bf16 (multiplt/training/master.py)."""
    if master_weights:
        from multiplt.training.master import MasterAdamW

        optimizer = MasterAdamW(decay_groups(model, weight_decay), lr=lr, betas=betas, eps=eps,
                                dtype=torch.bfloat16)
        model._register_state_dict_hook(_own_storage(optimizer))
        return optimizer
    # The fused CUDA kernel updates all parameters in a few launches instead of one per tensor.
    on_cuda = all(p.is_cuda for p in model.parameters())
    return torch.optim.AdamW(decay_groups(model, weight_decay), lr=lr, betas=betas, eps=eps,
                             fused=on_cuda or None)


def lr_multiplier(step: int, warmup_steps: int, total_steps: int, kind: str = "cosine") -> float:
    """Linear warmup from 0 over `warmup_steps`, then cosine (or linear) decay to 0 at
    `total_steps`; the same curve as transformers' get_cosine_schedule_with_warmup."""
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    if kind == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(1.0, progress)
    if kind == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                    kind: str = "cosine") -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_multiplier(step, warmup_steps, total_steps, kind))


def _own_storage(optimizer):
    """A state-dict hook for a model whose parameters are views of MasterAdamW's flat weight
    buffer: state dicts get copies, one storage per tensor as before (safetensors refuses tensors
    that share storage, and savers would drop them as if tied). keep_vars state dicts (Parameters)
    are left alone."""

    def hook(module, state_dict, prefix, local_metadata):
        for key, value in state_dict.items():
            if isinstance(value, torch.Tensor) and not isinstance(value, torch.nn.Parameter) \
                    and optimizer.owns(value):
                state_dict[key] = value.clone()
        return state_dict

    return hook
