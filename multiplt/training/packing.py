"""Packing: tokenized documents are concatenated, each followed by EOS, and cut into exact
`seq_len`-token chunks; the last partial chunk is dropped (as in the paper's training script,
where it keeps every batch the same shape). Labels are the inputs and attention covers the whole
chunk: there is no cross-document masking, again as in the paper.

Only torch here, so the GPU benchmark can import it on a bare image.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

import torch


def pack(token_lists: Iterable[list[int]], eos_id: int, seq_len: int) -> tuple[torch.Tensor, int]:
    """(sequences [n, seq_len] int64, number of tail tokens dropped)."""
    flat: list[int] = []
    for ids in token_lists:
        flat.extend(ids)
        flat.append(eos_id)
    n = len(flat) // seq_len
    dropped = len(flat) - n * seq_len
    if n == 0:
        return torch.empty((0, seq_len), dtype=torch.long), dropped
    return torch.tensor(flat[: n * seq_len], dtype=torch.long).view(n, seq_len), dropped


def split_documents(n_docs: int, eval_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Shuffle document indices with `seed` and hold out round(eval_fraction * n_docs) of them
    (at least one when the fraction is positive and there are two or more documents).
    Held-out documents never share a packed sequence with training documents."""
    order = list(range(n_docs))
    random.Random(seed).shuffle(order)
    n_eval = 0
    if eval_fraction > 0 and n_docs >= 2:
        n_eval = max(1, round(eval_fraction * n_docs))
    return order[n_eval:], order[:n_eval]


def epoch_order(n_sequences: int, epoch: int, seed: int) -> list[int]:
    """The order in which epoch `epoch` (1-based) visits the packed sequences. A pure function of
    (seed, epoch), so resuming at an epoch boundary replays exactly the data an uninterrupted run
    would have seen. The generator's seed is taken modulo 2**64, the range torch accepts (it maps
    a negative seed to seed + 2**64 itself), so every seed that worked keeps its order and a larger
    one no longer overflows."""
    g = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % 2 ** 64)
    return torch.randperm(n_sequences, generator=g).tolist()
