"""Whether a tiny model (`multiplt model init-tiny`) fits this machine's memory, checked before any
work: torch would otherwise fail allocating it mid-build (or the system kill the process). Kept
apart from the builder (multiplt/models/tiny.py), whose source keys the tests' model cache."""

from __future__ import annotations

from multiplt.errors import MultipltError
from multiplt.models.tiny import TinyConfig


def parameter_count(cfg: TinyConfig) -> int:
    """The parameters of the GPTBigCode model `cfg` describes, at its full vocabulary (the
    tokenizer may learn fewer tokens); the LM head shares the token embeddings."""
    h, kv = cfg.n_embd, 2 * (cfg.n_embd // cfg.n_head)  # multi-query: one key and one value head
    per_layer = (2 * h + (h + 1) * (h + kv) + (h + 1) * h  # ln_1, c_attn, attention c_proj
                 + 2 * h + (h + 1) * 4 * h + (4 * h + 1) * h)  # ln_2, mlp c_fc and c_proj
    return (cfg.vocab_size + cfg.n_positions) * h + cfg.n_layer * per_layer + 2 * h  # + ln_f


def training_bytes(cfg: TinyConfig) -> int:
    """A floor on the memory training `cfg` takes: fp32 weights, gradients and AdamW's two moments
    (16 bytes a parameter), the activations kept for the backward pass (Korthikanti et al. 2022,
    doubled for fp32) and the logits with their softmax and gradient."""
    tokens = cfg.batch_size * cfg.seq_len
    activations = 2 * tokens * cfg.n_layer * (34 * cfg.n_embd + 5 * cfg.n_head * cfg.seq_len)
    return 16 * parameter_count(cfg) + activations + 3 * 4 * tokens * cfg.vocab_size


def _read_int(path: str) -> int | None:
    try:
        with open(path) as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):  # missing, or "max" (no limit)
        return None


def machine_memory() -> int | None:
    """Bytes of memory this process could ever have: the system's MemTotal, or a cgroup's limit
    (a container) where lower; None when neither can be read. Not what is free now: a cgroup's
    usage counts its page cache, so "limit - usage" would refuse shapes that fit; the check is
    for shapes no machine of this size can train (a mistyped --hidden), not a forecast."""
    found = []
    try:
        with open("/proc/meminfo") as fh:
            found += [int(line.split()[1]) * 1024 for line in fh if line.startswith("MemTotal:")]
    except OSError:
        pass
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        cap = _read_int(limit)  # cgroup v2, v1 ("max" and v1's huge "no limit" read as None / large)
        if cap is not None:
            found.append(cap)
    return min(found) if found else None


def check_fits(cfg: TinyConfig) -> None:
    """MultipltError when training `cfg` needs more memory than this machine has at all."""
    need, have = training_bytes(cfg), machine_memory()
    if have is not None and need > have:
        raise MultipltError(
            f"tiny model too big: {_amount(parameter_count(cfg))} parameters (--hidden {cfg.n_embd}, "
            f"--layers {cfg.n_layer}, --vocab-size {cfg.vocab_size}) need at least {_amount(need >> 20, 1024)} "
            f"GiB to train; this machine has {_amount(have >> 20, 1024)} GiB")


def _amount(n: int, unit: int = 1) -> str:
    """`n / unit` for a message; a huge one as its power of ten (a flag may hold a number of any
    size: as a float or in digits it would overflow or fill the screen)."""
    if n < 10 ** 15:
        return f"{n / unit:,.1f}" if unit > 1 else f"{n:,}"
    return f"~10^{int((n // unit).bit_length() * 0.30103)}"
