"""Stop strings cut at the earliest occurrence; per-sample noise does not depend on batching."""

import pytest

from multiplt.generation.seeds import gumbel_noise, sample_seed
from multiplt.generation.stops import cut_at_stop


def test_cut_at_earliest_stop_not_first_listed():
    text = "  (+ x y))\n(define (g) 1)\n;; note"
    assert cut_at_stop(text, ["\n;", "\n(define"]) == "  (+ x y))"
    assert cut_at_stop("no stop here", ["\n;"]) == "no stop here"
    assert cut_at_stop("abc", []) == "abc"
    assert cut_at_stop("\n;x", ["\n;"]) == ""


def test_sample_seed_is_a_function_of_seed_problem_index():
    assert sample_seed(0, "HumanEval_0", 3) == sample_seed(0, "HumanEval_0", 3)
    seeds = {sample_seed(s, p, i) for s in (0, 1) for p in ("a", "b") for i in range(5)}
    assert len(seeds) == 20


def test_gumbel_noise_independent_of_batch_composition():
    torch = pytest.importorskip("torch")
    a = gumbel_noise(torch.tensor([11, 22, 33]), step=5, vocab=300)
    b = gumbel_noise(torch.tensor([33, 44]), step=5, vocab=300)
    assert torch.equal(a[2], b[0])
    assert not torch.equal(a[0], a[1])
    assert not torch.equal(a[2], gumbel_noise(torch.tensor([33]), step=6, vocab=300)[0])
    assert torch.isfinite(a).all()
    # a Gumbel(0, 1) sample has mean ~0.577
    big = gumbel_noise(torch.arange(64), step=0, vocab=4096)
    assert abs(big.mean().item() - 0.5772) < 0.02
