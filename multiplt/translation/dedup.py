"""Deduplication of one function's cleaned translations (MultiPL-T section 2f): exact first, then
greedy ROUGE-L. In sample order, a translation is dropped when its ROUGE-Lsum F-measure (with
stemming, on the comment-stripped code) against any translation kept before it is above the
threshold (0.6 by default, as MultiPL-T).

The score is rouge-score's `RougeScorer(["rougeLsum"], use_stemmer=True).score(kept, new)`,
computed here to the same float (tests/unit/translation/test_rouge_fast.py checks it against
rouge-score and a copy of the old implementation), but each program is tokenized and stemmed once
per `greedy` call instead of on every comparison, the per-line LCS runs bit-parallel on token ids,
and a pair stops being scored (or is not scored at all) as soon as an exact upper bound of its
hits (at first the multiset overlap of the two programs' tokens, which bounds rouge-score's
clamped hit count; then less each ref position that no LCS picked) cannot exceed the threshold.

rouge-score's summary-level LCS, restated: with ref = the kept program's lines and cand = the new
one's (lines split on "\\n", tokenized and stemmed each; m and n their token totals), for each ref
line r the union U(r) of the positions of r that `lcs_ind(r, c)` (one LCS, read out by its
backtrack) picks, over every cand line c; hits = sum over tokens t of min(count of t in cand,
number of positions in the unions holding t) (its loop over the unions, with the per-token counts
of both sides, clamps to exactly that, in any order); F = fmeasure(hits / n, hits / m)."""

from __future__ import annotations

import dataclasses

from multiplt.translation.clean import strip_comments

DEFAULT_THRESHOLD = 0.6
PAIRS_KEPT = 200_000  # line pairs whose LCS positions one `greedy` call remembers, at most
STEMS_KEPT = 200_000  # words whose stem a RougeDedup remembers, at most


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


class _CachedStemmer:
    """rouge-score's Porter stemmer (a pure function of the word), remembering each word's stem."""

    def __init__(self, stemmer):
        self._stem = stemmer.stem
        self._seen: dict[str, str] = {}

    def stem(self, word: str) -> str:
        stem = self._seen.get(word)
        if stem is None:
            if len(self._seen) >= STEMS_KEPT:
                self._seen.clear()
            stem = self._seen[word] = self._stem(word)
        return stem


class _Line:
    """One tokenized line: its token ids, and for each token the bit mask of its positions."""

    __slots__ = ("tokens", "masks", "full")

    def __init__(self, tokens: tuple[int, ...]):
        self.tokens = tokens
        masks: dict[int, int] = {}
        for pos, token in enumerate(tokens):
            masks[token] = masks.get(token, 0) | (1 << pos)
        self.masks = masks
        self.full = (1 << len(tokens)) - 1


class _Program:
    """A program as rougeLsum sees it: its non-empty lines (token ids), its token counts and total."""

    __slots__ = ("lines", "line_set", "counts", "length")

    def __init__(self, lines: list[_Line]):
        self.lines = lines
        self.line_set = {line.tokens for line in lines}
        counts: dict[int, int] = {}
        for line in lines:
            for token in line.tokens:
                counts[token] = counts.get(token, 0) + 1
        self.counts = counts
        self.length = sum(len(line.tokens) for line in lines)


def _lcs_positions(ref: _Line, can: _Line, reach: int) -> int:
    """The positions of `ref` (a bit mask) in rouge-score's `lcs_ind(ref, can)`, given `reach`,
    the positions of `ref` whose token `can` holds: its LCS table row by row as bit vectors (bit
    j-1 of row i clear where table[i][j] = table[i][j-1] + 1, Hyyro's bit-parallel LCS), then its
    backtrack, step for step; an LCS as long as `reach` is `reach` (it lies within it)."""
    r, c = ref.tokens, can.tokens
    cols = len(c)
    full = can.full
    masks = can.masks
    row = full
    rows = [row]
    for token in r:
        match = row & masks.get(token, 0)
        row = ((row + match) | (row - match)) & full
        rows.append(row)
    if cols - row.bit_count() == reach.bit_count():
        return reach
    out = 0
    i, j = len(r), cols
    while i > 0 and j > 0:
        if r[i - 1] == c[j - 1]:
            i -= 1
            j -= 1
            out |= 1 << i
        else:
            # table[i][j-1] > table[i-1][j], where table[i][j] = j - (ones of row i below bit j)
            below = (1 << (j - 1)) - 1
            left = j - 1 - (rows[i] & below).bit_count()
            up = j - (rows[i - 1] & (below << 1 | 1)).bit_count()
            if left > up:
                j -= 1
            else:
                i -= 1
    return out


class RougeDedup:
    def __init__(self, threshold: float = DEFAULT_THRESHOLD):
        from nltk.stem import porter
        from rouge_score import scoring

        _detach_absl_handler()
        self.threshold = threshold
        self._fmeasure = scoring.fmeasure
        self._stemmer = _CachedStemmer(porter.PorterStemmer())  # rouge-score's, with use_stemmer

    def similarity(self, a: str, b: str, lang: str) -> float:
        """ROUGE-Lsum F-measure of two programs, comments stripped; `a` is the reference (the
        kept program in `greedy`), as rouge-score's target."""
        cache = _Cache(self._stemmer)
        ref, can = cache.program(strip_comments(a, lang)), cache.program(strip_comments(b, lang))
        return self._score(ref, can, cache)

    def _score(self, ref: _Program, can: _Program, cache: _Cache,
               above: float | None = None) -> float | None:
        """rouge-score's rougeLsum F-measure, target `ref`, prediction `can`. With `above`: None
        as soon as the score cannot exceed it (hits, bounded by the multiset overlap at first,
        lose a position each time a line's union leaves out one that the bound still counted)."""
        if not ref.length or not can.length:
            return 0.0 if above is None or 0.0 > above else None
        counts = can.counts
        need = 0  # the fewest hits whose F-measure exceeds `above`
        if above is not None:
            room: dict[int, int] = {}  # per token: the ref positions that may still be hits
            bound = 0
            for token, count in ref.counts.items():
                other = counts.get(token)
                if other:
                    room[token] = count
                    bound += count if count < other else other
            need = self._fewest_hits_above(above, ref.length, can.length, bound)
            if bound < need:
                return None
        union_counts: dict[int, int] = {}
        pairs = cache.pairs
        for line in ref.lines:
            tokens = line.tokens
            if tokens in can.line_set:
                union = line.full
            else:
                union = 0
                masks = line.masks
                reach_all = 0
                for token, mask in masks.items():
                    if token in counts:
                        reach_all |= mask
                for other in can.lines:
                    if union == reach_all:
                        break
                    reach = 0  # positions of this line whose token the other line holds
                    for token in other.masks:
                        reach |= masks.get(token, 0)
                    if not reach & ~union:
                        continue
                    found = pairs.get((line, other))
                    if found is None:
                        if len(pairs) >= PAIRS_KEPT:
                            pairs.clear()
                        found = pairs[line, other] = _lcs_positions(line, other, reach)
                    union |= found
            missed = line.full & ~union
            pos = 0
            while union or missed:
                token = tokens[pos]
                if union & 1:
                    union_counts[token] = union_counts.get(token, 0) + 1
                elif missed & 1 and need:
                    left = room.get(token)
                    if left is not None:  # a position the bound counted as a possible hit
                        if left <= counts[token]:
                            bound -= 1
                        room[token] = left - 1
                union >>= 1
                missed >>= 1
                pos += 1
            if need and bound < need:
                return None
        hits = 0
        for token, count in union_counts.items():
            other = counts.get(token, 0)
            hits += count if count < other else other
        score = self._fmeasure(hits / can.length, hits / ref.length)
        return score if above is None or score > above else None

    def _fewest_hits_above(self, above: float, m: int, n: int, most: int) -> int:
        """The fewest hits h whose fmeasure(h / n, h / m) exceeds `above` (most + 1 when none up
        to `most` does); the float grows with h (2h / (m + n), steps far above its rounding)."""
        hits = max(0, min(most, int(above * (m + n) / 2) - 2))
        while hits <= most and not (hits and self._fmeasure(hits / n, hits / m) > above):
            hits += 1
        return hits

    def greedy(self, items: list[tuple[object, str]], lang: str) -> list[Verdict]:
        cache = _Cache(self._stemmer)
        threshold = self.threshold
        kept: list[tuple[object, _Program]] = []
        out = []
        for key, text in items:
            program = cache.program(strip_comments(text, lang))
            for kept_key, kept_program in kept:
                score = self._score(kept_program, program, cache, threshold)
                if score is not None:
                    out.append(Verdict(key, False, "near duplicate (ROUGE-L)", kept_key, round(score, 4)))
                    break
            else:
                kept.append((key, program))
                out.append(Verdict(key, True))
        return out


class _Cache:
    """Tokens of lines, as rouge-score's tokenizer gives them, as ids; one per `greedy` call."""

    def __init__(self, stemmer: _CachedStemmer):
        from rouge_score import tokenize

        self._tokenize = tokenize.tokenize
        self._stemmer = stemmer
        self._ids: dict[str, int] = {}
        self._lines: dict[str, _Line | None] = {}
        self._interned: dict[tuple[int, ...], _Line] = {}
        #: (ref line, cand line) -> `_lcs_positions`, for lines that recur across the samples
        self.pairs: dict[tuple[_Line, _Line], int] = {}

    def line(self, text: str) -> _Line | None:
        if text in self._lines:
            return self._lines[text]
        ids = self._ids
        tokens = tuple(ids.setdefault(t, len(ids)) for t in self._tokenize(text, self._stemmer))
        line = None
        if tokens:
            line = self._interned.get(tokens)
            if line is None:
                line = self._interned[tokens] = _Line(tokens)
        self._lines[text] = line
        return line

    def program(self, code: str) -> _Program:
        lines = (self.line(text) for text in code.split("\n") if text)
        return _Program([line for line in lines if line is not None])
