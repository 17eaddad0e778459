"""AdamW over fp32 master weights for a model whose own parameters are bf16 (precision
`bf16-master`, the Megatron-LM style of bf16 training).

The model's parameters are bf16, so its forward and backward use them directly: no per-step casts
of fp32 weights to bf16 (autocast) nor of bf16 weight gradients back to fp32, and activations,
LayerNorm inputs/outputs and the residual stream are bf16 (the matmuls and attention are bf16
under autocast too; LayerNorm and softmax still compute in fp32 inside their kernels). The
optimizer keeps an fp32 copy of every parameter (the master weights) and fp32 moments, laid out as
one flat buffer per parameter group; the model's bf16 parameters become views of one more flat
buffer, which the update writes with the rounded new weights (no copy back). State dicts of the
model still hold one tensor per parameter (optim.build_optimizer registers a hook that copies
them), so checkpoints are unchanged. The update is torch's AdamW (same formula, same decoupled weight decay, gradient
clipping by the same coefficient as `clip_grad_norm_`), done in fp32 on the masters.

Gradients: with one micro-batch per step each weight gradient is one GEMM's fp32 accumulation
rounded once to bf16, exactly what the autocast recipe gets too (there the GEMM also writes bf16,
then autograd casts it to fp32). With gradient accumulation the micro-batch gradients are summed in
an fp32 buffer (`accumulate`), as Megatron does, rather than in bf16.

One process only (no DDP/FSDP): the gradients are neither reduced nor sharded here.
On CUDA the update of each group is one compiled (Triton) kernel over the flat buffers.
"""

from __future__ import annotations

import math

import torch


def _adamw_flat(master, exp_avg, exp_avg_sq, grad, out, scalars, weight_decay: float, beta1: float,
                beta2: float, eps: float):
    """torch.optim.AdamW's update on flat fp32 buffers (in place); `out` receives the new weights
    in the model's dtype. scalars = [lr, clip coefficient, 1 - beta1^t, sqrt(1 - beta2^t)]."""
    lr, coef, bc1, bc2_sqrt = scalars[0], scalars[1], scalars[2], scalars[3]
    g = grad.float() * coef
    p = master * (1 - lr * weight_decay)
    m = exp_avg + (g - exp_avg) * (1 - beta1)  # exp_avg.lerp_(g, 1 - beta1)
    v = exp_avg_sq * beta2 + g * g * (1 - beta2)
    p = p - (lr / bc1) * m / (v.sqrt() / bc2_sqrt + eps)
    master.copy_(p)
    exp_avg.copy_(m)
    exp_avg_sq.copy_(v)
    out.copy_(p.to(out.dtype))


ALIGN = 64  # elements: each parameter's start in the flat buffers is 128-byte aligned (bf16)

_compiled = {}


def _update_fn(device: torch.device):
    if device.type != "cuda":
        return _adamw_flat
    if "cuda" not in _compiled:
        _compiled["cuda"] = torch.compile(_adamw_flat, dynamic=False, fullgraph=True)
    return _compiled["cuda"]


class MasterAdamW(torch.optim.Optimizer):
    """AdamW for low-precision model parameters with fp32 master weights and moments.

    Build it while the model is still fp32 (`build_optimizer(..., master_weights=True)` does): the
    masters are copied from the fp32 values, then each parameter's data becomes a `dtype` view of
    a flat weight buffer (tied parameters stay tied: they are one Parameter). Use `clip_grad_norm` before `step`
    (step.clip_grad_norm calls it), and `accumulate` after every micro-batch's backward but the
    last when accumulating gradients."""

    def __init__(self, groups: list[dict], lr: float, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, dtype: torch.dtype = torch.bfloat16):
        super().__init__(groups, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self.dtype = dtype
        self.flat = []  # per group: master, exp_avg, exp_avg_sq, grad and weight buffers, layout
        for group in self.param_groups:
            params = group["params"]
            device = params[0].device if params else torch.device("cpu")
            # Each parameter starts at a multiple of ALIGN elements (aligned vector loads in the
            # kernels that read the parameters); the gaps hold zeros and stay zero.
            offsets, total = [], 0
            for p in params:
                offsets.append(total)
                total += -(-p.numel() // ALIGN) * ALIGN
            master = torch.zeros(total, dtype=torch.float32, device=device)
            weights = torch.zeros(total, dtype=dtype, device=device)
            pads = []
            for p, o in zip(params, offsets):
                n = p.numel()
                master[o:o + n] = p.detach().reshape(-1)
                weights[o:o + n] = master[o:o + n].to(dtype)
                # The parameter becomes a view of the flat weights: the update writes the new bf16
                # weights in place (tied parameters are one Parameter, so they stay tied).
                p.data = weights[o:o + n].view_as(p)
                gap = -(-n // ALIGN) * ALIGN - n
                pads.append(torch.zeros(gap, dtype=dtype, device=device) if gap else None)
            self.flat.append({
                "master": master, "exp_avg": torch.zeros_like(master), "exp_avg_sq": torch.zeros_like(master),
                "grad": torch.zeros(total, dtype=dtype, device=device), "acc": None, "weights": weights,
                "pads": pads, "offsets": offsets, "step": 0})
        self.coef = None  # clip coefficient (0-d fp32 tensor) for the next step, from clip_grad_norm
        self.gathered = False

    def owns(self, tensor: torch.Tensor) -> bool:
        """Whether `tensor` is (a view of) one of the flat weight buffers."""
        ptr = tensor.untyped_storage().data_ptr()
        return any(f["weights"].untyped_storage().data_ptr() == ptr for f in self.flat if f["weights"].numel())

    # --- gradients ---
    @staticmethod
    def _grads(group, flat):
        """The pieces of the flat gradient: each parameter's gradient, then its alignment gap."""
        pieces = []
        for p, pad in zip(group["params"], flat["pads"]):
            pieces.append(p.grad.reshape(-1) if p.grad is not None else
                          torch.zeros(p.numel(), dtype=p.dtype, device=p.device))
            if pad is not None:
                pieces.append(pad)
        return pieces

    def accumulate(self) -> None:
        """Add the parameters' gradients (this micro-batch's) into fp32 sums and clear them."""
        for group, flat in zip(self.param_groups, self.flat):
            if not group["params"]:
                continue
            torch.cat(self._grads(group, flat), out=flat["grad"])
            if flat["acc"] is None:
                flat["acc"] = flat["grad"].float()
            else:
                flat["acc"] += flat["grad"]
            for p in group["params"]:
                p.grad = None

    def _gather(self) -> list[torch.Tensor]:
        """The step's gradient of each group as one flat tensor (bf16, or fp32 when accumulated)."""
        grads = []
        for group, flat in zip(self.param_groups, self.flat):
            if not group["params"]:
                grads.append(flat["grad"])
                continue
            if any(p.grad is not None for p in group["params"]):
                torch.cat(self._grads(group, flat), out=flat["grad"])
                if flat["acc"] is not None:
                    flat["acc"] += flat["grad"]
            grads.append(flat["acc"] if flat["acc"] is not None else flat["grad"])
        return grads

    @torch.no_grad()
    def clip_grad_norm(self, max_norm: float) -> torch.Tensor:
        """Total 2-norm of the step's gradients (fp32); the next step scales them by
        max_norm / (norm + 1e-6) clamped to 1, torch.nn.utils.clip_grad_norm_'s coefficient."""
        grads = self._gather()
        self.gathered = True
        norms = [torch.linalg.vector_norm(g, 2.0, dtype=torch.float32) for g in grads if g.numel()]
        norm = torch.linalg.vector_norm(torch.stack(norms), 2.0)
        self.coef = (max_norm / (norm + 1e-6)).clamp(max=1.0)
        return norm

    @torch.no_grad()
    def step(self, closure=None):
        if closure is not None:
            raise ValueError("MasterAdamW does not take a closure")
        grads = self._gather() if not self.gathered else [f["acc"] if f["acc"] is not None else f["grad"]
                                                           for f in self.flat]
        for group, flat, grad in zip(self.param_groups, self.flat, grads):
            if not group["params"]:
                continue
            beta1, beta2 = group["betas"]
            flat["step"] += 1
            t = flat["step"]
            device = flat["master"].device
            host = torch.tensor([group["lr"], 1.0, 1 - beta1 ** t, math.sqrt(1 - beta2 ** t)],
                                dtype=torch.float32)
            if device.type == "cuda":  # a pinned copy does not wait for the GPU
                host = host.pin_memory()
            scalars = host.to(device, non_blocking=True)
            if self.coef is not None:
                scalars[1] = self.coef.to(torch.float32)
            _update_fn(device)(flat["master"], flat["exp_avg"], flat["exp_avg_sq"], grad, flat["weights"],
                               scalars, float(group["weight_decay"]), float(beta1), float(beta2),
                               float(group["eps"]))
            flat["acc"] = None
        self.coef = None
        self.gathered = False

    def zero_grad(self, set_to_none: bool = True):
        for group, flat in zip(self.param_groups, self.flat):
            flat["acc"] = None
            for p in group["params"]:
                p.grad = None
        self.gathered = False

    # --- state (accelerate saves it with torch.save and restores it with load_state_dict) ---
    def state_dict(self) -> dict:
        groups = []
        index = 0
        for group in self.param_groups:
            g = {k: v for k, v in group.items() if k != "params"}
            g["params"] = list(range(index, index + len(group["params"])))
            index += len(group["params"])
            groups.append(g)
        state = {i: {"step": torch.tensor(float(f["step"])), "master": f["master"],
                     "exp_avg": f["exp_avg"], "exp_avg_sq": f["exp_avg_sq"]}
                 for i, f in enumerate(self.flat)}
        return {"format": "multiplt-master-adamw-1", "state": state, "param_groups": groups}

    @torch.no_grad()
    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict.get("format") != "multiplt-master-adamw-1":
            raise ValueError("not a MasterAdamW state (was the run started with another precision?)")
        if len(state_dict["param_groups"]) != len(self.param_groups):
            raise ValueError("MasterAdamW state has a different number of parameter groups")
        for group, saved, flat, i in zip(self.param_groups, state_dict["param_groups"], self.flat,
                                         range(len(self.flat))):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError("MasterAdamW state has different parameters")
            for k, v in saved.items():
                if k != "params":
                    group[k] = v
            s = state_dict["state"][i]
            for name in ("master", "exp_avg", "exp_avg_sq"):
                if s[name].shape != flat[name].shape:
                    raise ValueError("MasterAdamW state has different parameter sizes or layout")
                flat[name].copy_(s[name])
            flat["step"] = int(s["step"])
            flat["weights"].copy_(flat["master"].to(flat["weights"].dtype))  # the parameters' values
            flat["acc"] = None
