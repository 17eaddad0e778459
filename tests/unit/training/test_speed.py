"""The speed plan `multiplt train` picks: micro-batch and compile from (free GPU memory, model
shape, seq len, batch), with fake memory figures; the effective batch never changes."""

import pytest

from multiplt.errors import MultipltError
from multiplt.training.speed import GIB, ModelShape, estimate_bytes, plan

ONE_B = ModelShape(n_params=1_137_207_296, n_layer=24, hidden=2048, vocab=49152)  # StarCoderBase-1B


def test_cpu_keeps_one_sequence_per_forward_and_no_compile():
    p = plan(8, 2048, ONE_B, None, "fp32")
    assert (p.micro_batch, p.grad_accum, p.compile) == (1, 8, False)


@pytest.mark.parametrize("free_gib,micro", [(139, 8), (79, 8), (40, 2), (30, 1), (10, 1)])
def test_gpu_takes_the_largest_divisor_that_fits(free_gib, micro):
    p = plan(8, 2048, ONE_B, free_gib * GIB, "bf16-master")
    assert (p.micro_batch, p.grad_accum, p.compile) == (micro, 8 // micro, True)
    assert p.micro_batch * p.grad_accum == 8
    if micro > 1:  # the estimate of the chosen one fits; the next divisor's does not
        assert estimate_bytes(ONE_B, 2048, micro, "bf16-master") <= free_gib * GIB * 0.88 - 2 * GIB
    if micro < 8:
        assert estimate_bytes(ONE_B, 2048, micro * 2, "bf16-master") > free_gib * GIB * 0.88 - 2 * GIB


def test_only_divisors_of_the_per_process_batch():
    p = plan(6, 2048, ONE_B, 139 * GIB, "bf16-master")  # 6 fits, so 6 (never 8 or 4)
    assert (p.micro_batch, p.grad_accum) == (6, 1)
    p = plan(12, 2048, ONE_B, 60 * GIB, "bf16-master")
    assert 12 % p.micro_batch == 0 and p.micro_batch * p.grad_accum == 12


def test_memory_estimate_grows_with_seq_len_precision_and_shrinks_with_checkpointing():
    short, long_ = (plan(8, n, ONE_B, 40 * GIB, "bf16-master").micro_batch for n in (512, 2048))
    assert short > long_
    assert estimate_bytes(ONE_B, 2048, 4, "fp32") > estimate_bytes(ONE_B, 2048, 4, "bf16-master")
    assert plan(8, 2048, ONE_B, 50 * GIB, "fp32").micro_batch < plan(8, 2048, ONE_B, 50 * GIB, "bf16-master").micro_batch
    assert plan(8, 2048, ONE_B, 30 * GIB, "bf16-master", checkpointing=True).micro_batch > 1


def test_user_choices_win_and_bad_ones_fail():
    p = plan(8, 2048, ONE_B, 139 * GIB, "bf16-master", micro_batch=2, compile=False)
    assert (p.micro_batch, p.grad_accum, p.compile) == (2, 4, False)
    assert plan(8, 2048, ONE_B, None, "fp32", micro_batch=4, compile=True).compile is True
    with pytest.raises(MultipltError, match="micro_batch_size 3"):
        plan(8, 2048, ONE_B, 139 * GIB, "bf16-master", micro_batch=3)


def test_fsdp_shards_the_static_memory_and_does_not_compile():
    """Weights, gradients and optimizer state are split over the shards: 24 GiB fits one
    sequence per forward unsharded and two with 8 shards."""
    assert plan(4, 2048, ONE_B, 24 * GIB, "bf16-mixed").micro_batch == 1
    p = plan(4, 2048, ONE_B, 24 * GIB, "bf16-mixed", shards=8)
    assert (p.micro_batch, p.grad_accum, p.compile) == (2, 2, False)
    static = ONE_B.n_params * 18  # bf16-mixed: bytes per parameter of weights, grads, moments
    assert (estimate_bytes(ONE_B, 2048, 2, "bf16-mixed")
            - estimate_bytes(ONE_B, 2048, 2, "bf16-mixed", shards=8)) == static - static // 8
