"""Decontamination compares each function only with the benchmark texts that can be in it
(decontam.TextIndex), and decides as trying every text on every function did."""

from __future__ import annotations

import json
import random
import re

import pytest

from multiplt.corpus import decontam
from multiplt.corpus.normalize import canonical, squash
from tests.unit.corpus.helpers import row_of, rows_of

#: every character the squash regex counts as whitespace, the odd ones among them
SPACES = [c for c in map(chr, range(0x3100)) if re.fullmatch(r"\s", c)]
ALPHABET = ["a", "b", "_", "x1", "é", "λ", "名", "(", ")", ".", ",", ":", "'", "+", "=", "#", "-",
            " ", " ", "\n", "\t", *SPACES]


def reference(bench: decontam.Benchmarks, row: dict) -> str | None:
    """The check as it was before the index: every text tried on every function, in order."""
    content = row["content"]
    for text, label in bench.verbatim.items():
        if text in content:
            return f"verbatim text of {label}"
    squashed = squash(content)
    for text, label in bench.squashed.items():
        if text in squashed:
            return f"docstring of {label} (whitespace aside)"
    label = bench.canonical.get(canonical(row["_node"]))
    if label:
        return f"solution of {label} (names, comments or layout aside)"
    return None


def random_text(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(length))


def cut(rng: random.Random, text: str) -> str:
    """A piece of `text` at any offsets: mid-word, at a word's edge, whitespace at either end."""
    start = rng.randrange(len(text))
    return text[start:start + rng.randrange(1, 40)]


def test_the_words_of_a_squashed_text_are_its_own():
    """check() finds the squashed content's candidates from the content's words: squash() must
    leave every word as it was, whatever whitespace stands between them."""
    rng = random.Random(0)
    for _ in range(2000):
        text = random_text(rng, rng.randrange(0, 30))
        assert decontam.WORD.findall(squash(text)) == decontam.WORD.findall(text), repr(text)


def test_the_index_never_leaves_out_a_text_that_is_in_the_string():
    """Texts cut from the string at random offsets (mid-word, at its ends, whitespace around)
    and random ones: each text that is a substring is a candidate, and first_in gives the label
    of the first text in order that is a substring, as a scan of all texts does."""
    rng = random.Random(1)
    found = 0
    for _ in range(300):
        string = random_text(rng, rng.randrange(1, 200))
        texts = {}
        for number in range(rng.randrange(1, 30)):
            text = cut(rng, string) if rng.random() < 0.7 else random_text(rng, rng.randrange(1, 6))
            texts.setdefault(text, f"b:{number}")
        index = decontam.TextIndex(texts)
        candidates = index.candidates(set(decontam.WORD.findall(string)))
        assert candidates == sorted(set(candidates))
        for position, text in enumerate(texts):
            if text in string:
                assert position in candidates, (text, string)
                found += 1
        want = next((label for text, label in texts.items() if text in string), None)
        assert index.first_in(string, candidates) == want
    assert found > 1000


def function_source(rng: random.Random, bench_texts: list[str], number: int) -> str:
    """A function with a random docstring and body lines, some holding a piece of a benchmark
    text, a whole one (raw string), or a docstring reflowed over several lines."""
    lines = []
    for _ in range(rng.randrange(1, 6)):
        roll = rng.random()
        if roll < 0.2:
            piece = cut(rng, rng.choice(bench_texts))
        elif roll < 0.35:
            piece = rng.choice(bench_texts)
        else:
            piece = random_text(rng, rng.randrange(1, 25))
        lines.append(piece)
    doc = rng.choice(bench_texts) if rng.random() < 0.3 else random_text(rng, 12)
    doc = doc.replace(" ", rng.choice(["\n    ", "  ", " ", "\t"]), rng.randrange(3))
    body = "".join(f"    s{i} = {line!r}  # {line.splitlines()[0] if line.strip() else ''}\n"
                   for i, line in enumerate(lines))
    return f'def f{number}(x):\n    r"""{doc}"""\n{body}    return x\n'


def random_benchmarks(rng: random.Random) -> decontam.Benchmarks:
    """Benchmarks of random texts: words, punctuation, unicode, texts with no inner word
    (`a+b`), some a prefix of another (both may match: the first one's label must win)."""
    bench = decontam.Benchmarks()
    words = ["sum", "items", "of", "xs", "return", "total", "a", "b", "é", "名字", "x1"]
    for number in range(rng.randrange(5, 40)):
        text = "".join(rng.choice([*words, " ", " ", ".", "(", ")", "+", "\n"]) for _ in range(rng.randrange(3, 10)))
        if len(text.strip()) < 4:
            continue
        if rng.random() < 0.5:
            bench.verbatim.setdefault(text, f"v:{number}")
        if rng.random() < 0.5:
            bench.squashed.setdefault(squash(text), f"s:{number}")
    return bench


@pytest.mark.parametrize("seed", range(6))
def test_every_decision_and_detail_is_the_scans(seed):
    """Random benchmark texts and random functions holding pieces of them, whole ones and
    reflowed docstrings: each function is kept or dropped, with the same detail, as by trying
    every text on it in order."""
    rng = random.Random(seed)
    bench = random_benchmarks(rng)
    texts = [*bench.verbatim, *bench.squashed]
    block = decontam.DecontaminationFilter(bench)
    reasons = []
    for number in range(150):
        row = row_of(function_source(rng, texts, number))
        reasons.append(reference(bench, row))
        assert block.check(row) == reasons[-1], row["content"]
    assert {r.split(" ")[0] if r else None for r in reasons} == {"verbatim", "docstring", None}


def test_humaneval_and_an_mbpp_file_decide_as_the_scan(tmp_path):
    """The real HumanEval and MBPP-format rows: functions that hold a solution, a reflowed
    prompt docstring, a renamed solution, or none."""
    humaneval = decontam._rows("humaneval")
    mbpp = tmp_path / "mbpp.jsonl"
    mbpp.write_text("".join(json.dumps({"task_id": n, "text": f"Write a function to add {n} to each item.",
                                        "code": f"def add_{n}(xs):\n    return [x + {n} for x in xs]\n"}) + "\n"
                            for n in range(30)))
    bench = decontam.load(("humaneval", str(mbpp)))
    block = decontam.DecontaminationFilter(bench)
    rng = random.Random(7)
    sources = []
    for number, problem in enumerate(humaneval):
        doc = problem["prompt"].split('"""')[1] if '"""' in problem["prompt"] else "x"
        sources += [
            problem["prompt"] + problem["canonical_solution"],
            f'def g{number}(v):\n    """{" ".join(doc.split()).replace(" ", chr(10) + "    ", 5)} """\n    return v\n',
            f'def h{number}(v):\n    """Other."""\n    s = 1\n    return v + {number}\n']
    sources += [f'def m{n}(ys):\n    """Add {n}\n    to each item."""\n    return [y + {n} for y in ys]\n'
                for n in range(30)]
    rng.shuffle(sources)
    reasons = []
    for source in sources:
        for row in rows_of(source):  # a prompt may hold helper functions too
            reasons.append(reference(bench, row))
            assert block.check(row) == reasons[-1], source
    kinds = {r.split(" ")[0] if r else None for r in reasons}
    assert kinds == {"verbatim", "docstring", "solution", None}


class CountingStr(str):
    """A string that counts the substring tests made on it (`text in string`)."""

    tests = 0

    def __contains__(self, text):
        CountingStr.tests += 1
        return super().__contains__(text)


def test_a_function_is_compared_only_with_the_texts_that_may_be_in_it(monkeypatch):
    """Trying all of HumanEval's 486 texts (solutions and docstrings, verbatim and squashed) on
    every function made the check cost functions x texts: a function that shares no word with
    a text is not compared with it."""
    bench = decontam.load(("humaneval",))
    block = decontam.DecontaminationFilter(bench)
    real_squash = decontam.squash
    monkeypatch.setattr(decontam, "squash", lambda text: CountingStr(real_squash(text)))
    row = row_of('def zorp(qq):\n    """Frobnicate the qq."""\n    return qq\n')
    row["content"] = CountingStr(row["content"])
    CountingStr.tests = 0
    assert block.check(row) is None
    assert CountingStr.tests < (len(bench.verbatim) + len(bench.squashed)) / 10
