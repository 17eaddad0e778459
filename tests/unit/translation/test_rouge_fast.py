"""ROUGE-L dedup at scale: `RougeDedup` tokenizes and stems each program once per `greedy` call,
scores line pairs with a bit-parallel LCS, and skips pairs whose exact bound cannot exceed the
threshold; its decisions and scores are those of rouge-score's scorer on every pair (the
implementation before, kept here as `Reference`). `collect`'s progress moves per function."""

from __future__ import annotations

import random

import pytest

from multiplt import storage
from multiplt.execution import files
from multiplt.translation import collect as collect_mod
from multiplt.translation import dedup
from multiplt.translation.clean import strip_comments

WORDS = ("define let lambda if cond else list car cdr cons null? append map filter foldl "
         "string-append number->string x y z acc result helper loop running runs counted").split()


def rouge_scorer():
    """rouge-score's scorer module, imported once a RougeDedup has pointed absl's log handler
    (which rouge-score imports) away from the capture of the test running, as collect does: at
    collection, it would hold a capture that pytest closes."""
    dedup.RougeDedup()
    from rouge_score import rouge_scorer

    return rouge_scorer


class Reference:
    """The greedy ROUGE-L dedup before the fast path: rouge-score's scorer on every pair."""

    def __init__(self, threshold: float):
        self.threshold = threshold
        self.scorer = rouge_scorer().RougeScorer(["rougeLsum"], use_stemmer=True)

    def greedy(self, items, lang):
        kept, out = [], []
        for key, text in items:
            code = strip_comments(text, lang)
            for kept_key, kept_code in kept:
                score = self.scorer.score(kept_code, code)["rougeLsum"].fmeasure
                if score > self.threshold:
                    out.append(dedup.Verdict(key, False, "near duplicate (ROUGE-L)", kept_key,
                                             round(score, 4)))
                    break
            else:
                kept.append((key, code))
                out.append(dedup.Verdict(key, True))
        return out


def program(rng: random.Random, lines: int = 8) -> str:
    """A Racket-like program as the scale bench makes them (a small vocabulary, so pairs share
    most tokens and ties in the LCS tables are common)."""
    out = [f"(define ({rng.choice(WORDS)} {rng.choice(WORDS)} {rng.choice(WORDS)})"]
    for _ in range(lines):
        out.append("  (" + " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 8))) + ")")
    return "\n".join(out) + ")"


def mutate(rng: random.Random, text: str) -> str:
    """A near duplicate: lines replaced, repeated, dropped, swapped, or their words shuffled, a
    comment added."""
    lines = text.split("\n")
    for _ in range(rng.randint(0, 4)):
        op, i = rng.random(), rng.randrange(len(lines))
        if op < 0.25:
            lines[i] = "  (" + " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 8))) + ")"
        elif op < 0.4:
            lines.insert(i, rng.choice(lines))
        elif op < 0.5 and len(lines) > 1:
            del lines[i]
        elif op < 0.7:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif op < 0.9:
            words = lines[i].split(" ")
            rng.shuffle(words)
            lines[i] = " ".join(words)
        else:
            lines.insert(i, ";; " + " ".join(rng.sample(WORDS, 3)))
    return "\n".join(lines)


def as_tuples(verdicts):
    return [(v.key, v.kept, v.reason, v.duplicate_of, v.score) for v in verdicts]


def samples(seed: int, n: int) -> list[tuple[int, str]]:
    """One function's samples: distinct programs, near duplicates of a few, and exact shuffles
    of one program's words over its lines (the same multiset of tokens: the bound lets none by)."""
    rng = random.Random(seed)
    bases = [program(rng) for _ in range(3)]
    words = bases[0].split(" ")
    out = []
    for i in range(n):
        kind = rng.random()
        if kind < 0.35:
            text = program(rng)
        elif kind < 0.8:
            text = mutate(rng, rng.choice(bases))
        else:
            rng.shuffle(words)
            text = " ".join(words)
        out.append((i, text))
    return out


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("threshold", [0.3, 0.6, 0.8, 0.9, 0.99, 1.0])
def test_greedy_decides_as_rouge_score_on_every_pair(seed, threshold):
    items = samples(seed, 14)
    assert as_tuples(dedup.RougeDedup(threshold).greedy(items, "rkt")) == \
        as_tuples(Reference(threshold).greedy(items, "rkt"))


def test_caches_that_overflow_change_nothing(monkeypatch):
    """The line-pair and stem caches are bounded; emptied on the way, the decisions are the same."""
    monkeypatch.setattr(dedup, "PAIRS_KEPT", 3)
    monkeypatch.setattr(dedup, "STEMS_KEPT", 2)
    items = samples(11, 14)
    for threshold in (0.6, 0.9):
        assert as_tuples(dedup.RougeDedup(threshold).greedy(items, "rkt")) == \
            as_tuples(Reference(threshold).greedy(items, "rkt"))


def test_the_reviewers_bench_programs_decide_alike():
    """The scale review's inputs (13-line programs of a 24-word vocabulary) at its worst-case
    threshold 0.99 (all kept) and at thresholds that drop some."""
    rng = random.Random(1)
    items = [(i, program(rng, 12)) for i in range(12)]
    for threshold in (0.99, 0.8, 0.7):
        assert as_tuples(dedup.RougeDedup(threshold).greedy(items, "rkt")) == \
            as_tuples(Reference(threshold).greedy(items, "rkt"))


def test_similarity_is_rouge_scores_float_on_random_texts():
    """Punctuation-only lines, blank lines, comments, stemmed forms, case, non-ASCII, empty texts."""
    rng = random.Random(5)
    pieces = ["a", "b", "c", "running", "runs", "ran", "x1", "(", ")", " ", "\n", "\n\n", "-", "é", "Z"]
    scorer = rouge_scorer().RougeScorer(["rougeLsum"], use_stemmer=True)
    rouge = dedup.RougeDedup()
    for _ in range(600):
        a = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        b = mutate(rng, a) if a and rng.random() < 0.5 else \
            "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        want = scorer.score(strip_comments(a, "rkt"), strip_comments(b, "rkt"))["rougeLsum"].fmeasure
        assert rouge.similarity(a, b, "rkt") == want, (a, b)


def test_lcs_positions_are_rouge_scores_backtrack():
    """rougeLsum unions the positions of one LCS per line pair, the one rouge-score's backtrack
    reads out; with few distinct tokens, ties abound."""
    rng, scorer = random.Random(9), rouge_scorer()
    for _ in range(3000):
        a = tuple(rng.randrange(rng.randint(1, 4)) for _ in range(rng.randint(1, 12)))
        b = tuple(rng.randrange(rng.randint(1, 4)) for _ in range(rng.randint(1, 12)))
        ref, can = dedup._Line(a), dedup._Line(b)
        reach = 0
        for token in can.masks:
            reach |= ref.masks.get(token, 0)
        want = sum(1 << i for i in scorer.lcs_ind(list(a), list(b)))
        assert dedup._lcs_positions(ref, can, reach) == want, (a, b)


def test_each_word_is_stemmed_once(monkeypatch):
    """Before, every comparison re-tokenized and re-stemmed both programs (n^2 / 2 times each)."""
    from nltk.stem import porter

    stemmed = []
    real = porter.PorterStemmer.stem

    def stem(self, word, *args, **kwargs):
        stemmed.append(word)
        return real(self, word, *args, **kwargs)

    monkeypatch.setattr(porter.PorterStemmer, "stem", stem)
    rng = random.Random(1)
    items = [(i, program(rng, 12)) for i in range(20)]
    verdicts = dedup.RougeDedup(0.99).greedy(items, "rkt")
    assert all(v.kept for v in verdicts)
    assert stemmed and len(stemmed) == len(set(stemmed))


def test_pairs_that_cannot_reach_the_threshold_build_no_lcs(monkeypatch):
    """Programs with no token in common (or too few: the multiset overlap bounds the hits) are
    kept without an LCS table, rouge-score's or ours."""
    built, scorer = [], rouge_scorer()
    real_table, real_positions = scorer._lcs_table, getattr(dedup, "_lcs_positions", None)
    monkeypatch.setattr(scorer, "_lcs_table", lambda *a: built.append(a) or real_table(*a))
    monkeypatch.setattr(dedup, "_lcs_positions", lambda *a: built.append(a) or real_positions(*a),
                        raising=False)  # (the implementation before had no _lcs_positions)
    items = [(i, f"(define (f{i} x)\n  (word{i}a x{i} (word{i}b x{i})))") for i in range(10)]
    assert all(v.kept for v in dedup.RougeDedup(0.6).greedy(items, "rkt"))
    assert built == []


# collect's progress

PROMPT = "-- canonical python\nlocal function f(xs)\n"
NONCE = "0123456789abcdef" * 2
RUN = {"model": "replay", "revision": None}


def problem(i: int) -> dict:
    return {"sha1": f"{i:02d}" * 20, "id": i, "entrypoint": "f", "prompt": PROMPT,
            "clean_prompt": "local function f(xs)\n", "tests_nonce": NONCE}


def write_results(folder: str, sha1: str) -> None:
    body = "  return #xs\nend\n"
    results = [{"program": PROMPT + body + "\nlu = require('luaunit')\n", "status": "OK", "exit_code": 0,
                "stdout": f"OK\n{NONCE}\n"}]
    storage.write_json(files.results_uri(folder, sha1),
                       {"name": sha1, "completions": [body], "results": results})


class Bar:
    def __init__(self, events):
        self.events = events

    def update(self, n=1):
        self.events.append(("update", n))

    def close(self):
        self.events.append(("close",))


def test_collect_progress_moves_with_each_function(tmp_path, monkeypatch):
    """Before, the bar moved once per part of CHUNK (200) functions: nothing for minutes."""
    events = []
    monkeypatch.setattr(collect_mod, "progress", lambda **kwargs: Bar(events))
    real = collect_mod.collect_function

    def collect_function(problem, *args):
        events.append(("function", problem["sha1"]))
        return real(problem, *args)

    monkeypatch.setattr(collect_mod, "collect_function", collect_function)
    folder, work = str(tmp_path / "completions"), str(tmp_path / "work")
    problems = [problem(i) for i in range(3)]
    for p in problems:
        write_results(folder, p["sha1"])
    kept, _, _ = collect_mod.collect(problems, folder, work, "lua", 0.6, RUN, 1)
    assert len(kept) == 3
    assert events == [e for p in problems for e in (("function", p["sha1"]), ("update", 1))] + [("close",)]

    events.clear()  # a rerun reuses the saved part: the bar moves by the part at once
    assert collect_mod.collect(problems, folder, work, "lua", 0.6, RUN, 1)[0] == kept
    assert events == [("update", 3), ("close",)]
