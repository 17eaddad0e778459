"""A three-problem Racket benchmark with a replay source of four completions per problem, for the
generate driver's tests (no model needed)."""

import pytest

from multiplt import storage

STOPS = ["\n(define", "\n;"]


@pytest.fixture
def bench(tmp_path):
    """(benchmark URI, replay source URI)."""
    rows = [{"name": f"HumanEval_{i}_f", "language": "rkt", "prompt": f"#lang racket\n(define (f{i} x)\n",
             "tests": "(module+ test)\n", "stop_tokens": STOPS} for i in range(3)]
    uri = str(tmp_path / "bench.jsonl")
    storage.write_jsonl(uri, rows)
    replay = str(tmp_path / "replay.jsonl")
    storage.write_jsonl(replay, [{"name": r["name"], "completion": f"  (+ x {j}))"}
                                 for r in rows for j in range(4)])
    return uri, replay
