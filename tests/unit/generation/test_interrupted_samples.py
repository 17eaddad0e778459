"""Samples that finish out of order (continuous batching, the openai backend's concurrent
requests) survive an interrupted generate: each finished sample is written at once, those ahead
of an earlier one under `multiplt_pending`, the rerun draws only the others, and the finished
folder equals an uninterrupted run's (the key gone)."""

import pytest

from multiplt import storage
from multiplt.evaluation.run_folder import completion_counts
from multiplt.execution import files
from multiplt.generation import folder
from multiplt.generation.replay import ReplayBackend, load_replay

from tests.unit.generation.test_driver_replay import run

PROBLEMS = ["HumanEval_0_f", "HumanEval_1_f", "HumanEval_2_f"]


def test_samples_finished_ahead_of_an_earlier_one_survive_an_interrupt(bench, tmp_path, monkeypatch):
    reference = str(tmp_path / "reference")
    run(bench, reference, n=4)
    real = ReplayBackend.generate

    def first_ones_never_finish(self, requests, sampling):
        """Every problem's samples 3, 2, 1 finish (in that order, two batches); then Ctrl-C,
        while each one's sample 0 is still running."""
        done = [pair for group in real(self, requests, sampling) for pair in group
                if pair[0].index != 0][::-1]
        yield done[:4]
        yield done[4:]
        raise KeyboardInterrupt

    monkeypatch.setattr(ReplayBackend, "generate", first_ones_never_finish)
    out = str(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        run(bench, out, n=4)
    for name in PROBLEMS:
        kept = storage.read_json(folder.problem_uri(out, name))
        assert kept["completions"] == []
        assert kept[folder.PENDING_KEY] == {str(i): f"  (+ x {i}))" for i in (1, 2, 3)}
    # the readers of a completions file take only `completions`
    assert completion_counts(out) == {name: 0 for name in PROBLEMS}
    assert load_replay(out) == {name: [] for name in PROBLEMS}
    assert files.PENDING_KEY not in files.results_doc(kept, [])

    asked = []

    def recorded(self, requests, sampling):
        asked.extend((r.problem, r.index) for r in requests)
        yield from real(self, requests, sampling)

    monkeypatch.setattr(ReplayBackend, "generate", recorded)
    run(bench, out, n=4)
    assert sorted(asked) == [(name, 0) for name in PROBLEMS]  # only what was lost
    for name in PROBLEMS:
        assert storage.read_json(folder.problem_uri(out, name)) == \
            storage.read_json(folder.problem_uri(reference, name))
    assert folder.read_run(out)["complete"] is True


def test_two_writers_keep_each_others_waiting_samples(tmp_path):
    """A waiting sample of the file is kept against a writer that read the file before it was
    written (and joins the completions once the gap is filled), as completions are."""
    out = str(tmp_path / "run")
    base = {"name": "P", "language": "lua", "prompt": "p", "tests": "t", "completions": [],
            "stop_tokens": [], "temperature": 0.2, "top_p": 0.95, "max_tokens": 8}
    assert folder.add_samples(out, folder.with_pending(base, {2: "c2"}), "bench") == ([], {2: "c2"}, True)
    # another writer, that never saw sample 2, finished sample 0 and holds 3 waiting
    assert folder.add_samples(out, folder.with_pending({**base, "completions": ["c0"]}, {3: "c3"}),
                              "bench") == (["c0"], {2: "c2", 3: "c3"}, True)
    # nothing new: nothing written
    assert folder.add_samples(out, folder.with_pending(base, {3: "other"}), "bench") == \
        (["c0"], {2: "c2", 3: "c3"}, False)
    assert folder.add_samples(out, {**base, "completions": ["x", "c1"]}, "bench") == \
        (["c0", "c1", "c2", "c3"], {}, True)
    assert folder.PENDING_KEY not in storage.read_json(folder.problem_uri(out, "P"))
