"""step.evaluate splits the held-out sequences across processes, and every process runs the same
number of forwards even when the split is uneven (under FSDP each forward gathers parameters, a
collective: a process that skipped one would leave the others waiting forever)."""

import torch

from multiplt.training.step import evaluate


class CountingModel(torch.nn.Module):
    def __init__(self, vocab=8):
        super().__init__()
        self.vocab, self.calls = vocab, 0

    def forward(self, input_ids, use_cache=False):
        self.calls += 1
        logits = torch.nn.functional.one_hot(input_ids, self.vocab).float() * 3.0  # predicts the same token
        return type("Out", (), {"logits": logits})()


class FakeAccelerator:
    """Process `index` of `world`; reduce adds the other processes' sums given in `others`."""

    device = torch.device("cpu")

    def __init__(self, index, world, others):
        self.process_index, self.num_processes, self.others = index, world, others

    def reduce(self, tensor, reduction="sum"):
        return tensor + sum(self.others)


def test_every_process_runs_the_same_forwards_on_an_uneven_split():
    sequences = torch.randint(0, 8, (3, 5))  # 3 sequences over 2 processes: 2 and 1
    forwards = []
    for index in (0, 1):
        model = CountingModel()
        evaluate(model, sequences, 1, FakeAccelerator(index, 2, []))
        forwards.append(model.calls)
    assert forwards == [2, 2]


def test_padding_forward_does_not_change_the_loss():
    sequences = torch.randint(0, 8, (3, 5))
    whole = evaluate(CountingModel(), sequences, 1, FakeAccelerator(0, 1, []))
    # the sums of process 1 (one real sequence, one weight-0 padding forward) added to process 0's
    acc1 = FakeAccelerator(1, 2, [])
    captured = {}
    acc1.reduce = lambda t, reduction="sum": captured.setdefault("p1", t.clone()) * 0 + t
    evaluate(CountingModel(), sequences, 1, acc1)
    assert captured["p1"][1].item() == 1.0  # one sequence counted, the padding forward not
    loss = evaluate(CountingModel(), sequences, 1, FakeAccelerator(0, 2, [captured["p1"]]))
    assert abs(loss - whole) < 1e-12
