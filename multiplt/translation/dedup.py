"""Deduplication of one function's cleaned translations (MultiPL-T section 2f): exact first, then
greedy ROUGE-L. In sample order, a translation is dropped when its ROUGE-Lsum F-measure (with
stemming, on the comment-stripped code) against any translation kept before it is above the
threshold (0.6 by default, as MultiPL-T)."""

from __future__ import annotations

import dataclasses

from multiplt.translation.clean import strip_comments

DEFAULT_THRESHOLD = 0.6


@dataclasses.dataclass
class Verdict:
    key: object  # what the caller named the item (the sample index)
    kept: bool
    reason: str = ""
    duplicate_of: object = None
    score: float | None = None


def exact(items: list[tuple[object, str]]) -> list[Verdict]:
    first: dict[str, object] = {}
    out = []
    for key, text in items:
        if text in first:
            out.append(Verdict(key, False, "exact duplicate", first[text]))
        else:
            first[text] = key
            out.append(Verdict(key, True))
    return out


def _detach_absl_handler() -> None:
    """rouge-score imports absl.logging, whose handler holds the sys.stderr of the moment and
    closes it at logging.shutdown() (which `multiplt` calls on exit) unless it is the current
    sys.stderr; point it at the interpreter's own stderr, which it never closes."""
    import sys

    from absl import logging as absl_logging

    absl_logging.get_absl_handler().python_handler.setStream(sys.__stderr__)


class RougeDedup:
    def __init__(self, threshold: float = DEFAULT_THRESHOLD):
        from rouge_score import rouge_scorer

        _detach_absl_handler()
        self.threshold = threshold
        self.scorer = rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=True)

    def similarity(self, a: str, b: str, lang: str) -> float:
        """ROUGE-Lsum F-measure of two programs, comments stripped (symmetric)."""
        return self._score(strip_comments(a, lang), strip_comments(b, lang))

    def _score(self, a: str, b: str) -> float:
        return self.scorer.score(a, b)["rougeLsum"].fmeasure

    def greedy(self, items: list[tuple[object, str]], lang: str) -> list[Verdict]:
        kept: list[tuple[object, str]] = []
        out = []
        for key, text in items:
            code = strip_comments(text, lang)
            for kept_key, kept_code in kept:
                score = self._score(kept_code, code)
                if score > self.threshold:
                    out.append(Verdict(key, False, "near duplicate (ROUGE-L)", kept_key, round(score, 4)))
                    break
            else:
                kept.append((key, code))
                out.append(Verdict(key, True))
        return out
