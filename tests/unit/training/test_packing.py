"""Packing with EOS separators into exact sequences; document hold-out; per-epoch data order."""

import torch

from multiplt.training.packing import epoch_order, pack, split_documents

EOS = 0


def test_documents_are_joined_by_eos_and_cut_into_exact_chunks():
    seqs, dropped = pack([[1, 2, 3], [4, 5], [6, 7, 8, 9]], EOS, 4)
    # flat: 1 2 3 E 4 5 E 6 7 8 9 E (12 tokens) -> 3 chunks of 4, nothing dropped
    assert seqs.tolist() == [[1, 2, 3, 0], [4, 5, 0, 6], [7, 8, 9, 0]]
    assert dropped == 0 and seqs.dtype == torch.long


def test_the_last_partial_chunk_is_dropped():
    seqs, dropped = pack([[1, 2, 3, 4, 5]], EOS, 4)
    assert seqs.tolist() == [[1, 2, 3, 4]] and dropped == 2
    seqs, dropped = pack([[1]], EOS, 4)
    assert seqs.shape == (0, 4) and dropped == 2


def test_split_documents_holds_out_a_fraction_disjointly():
    train, held = split_documents(1000, 0.01, seed=1)
    assert len(held) == 10 and len(train) == 990
    assert sorted(train + held) == list(range(1000))
    assert split_documents(1000, 0.01, seed=1) == (train, held)
    assert split_documents(1000, 0.01, seed=2)[1] != held
    assert split_documents(50, 0.01, seed=1)[1].__len__() == 1  # at least one document
    assert split_documents(50, 0.0, seed=1)[1] == []


def test_epoch_order_is_a_pure_function_of_seed_and_epoch():
    a = epoch_order(100, 1, seed=3)
    assert sorted(a) == list(range(100))
    assert a == epoch_order(100, 1, seed=3)
    assert a != epoch_order(100, 2, seed=3)
    assert a != epoch_order(100, 1, seed=4)


def test_epoch_order_takes_any_seed_and_keeps_the_order_of_every_seed_that_worked():
    """The generator seed is reduced modulo 2**64 (the range torch takes): a huge seed no longer
    overflows, and the seeds that worked before give exactly the order they gave (resumes match)."""
    for seed in (0, 7, 42, 2 ** 32 - 1, 2 ** 40):
        before = torch.randperm(50, generator=torch.Generator().manual_seed(seed * 1_000_003 + 3)).tolist()
        assert epoch_order(50, 3, seed) == before
    big = 2 ** 70
    assert sorted(epoch_order(50, 1, big)) == list(range(50))
    assert epoch_order(50, 1, big) == epoch_order(50, 1, big)
