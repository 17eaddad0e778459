"""docs/languages.md tells how to select MultiPL-E's own HumanEval problem set with `--problems`:
build the benchmark here, then leave out the problem numbers the doc's example names. Those
numbers must leave exactly MultiPL-E's problems (multipl-e-facts section 1: 161 problems, without
32, 38 and 50; jl also without 137 and 148; ml also without 22, 103, 125, 136, 137 and 148), as
many as the doc's count table gives for MultiPL-E."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from multiplt import languages
from multiplt.benchmarks import analyze, build, sources

DOC = Path(__file__).resolve().parents[3] / "docs" / "languages.md"
NOT_IN_MULTIPL_E = {"rkt": {32, 38, 50}, "r": {32, 38, 50}, "lua": {32, 38, 50},
                    "jl": {32, 38, 50, 137, 148},
                    "ml": {22, 32, 38, 50, 103, 125, 136, 137, 148}}


def _documented_drops() -> dict[str, set[int]]:
    """The numbers the doc's example leaves out, per language: the jl command's own arguments
    and the comment beside them (`# rkt, r, lua: 32 38 50; ml: ...`)."""
    text = DOC.read_text()
    block = text[text.index("```\nmultiplt benchmark build --lang jl"):]
    block = block[:block.index("```", 4)]
    drops = {"jl": {int(n) for n in re.search(r"humaneval-jl\.jsonl ([\d ]+)\)", block)[1].split()}}
    comment = re.search(r"# (rkt, r, lua: [^\n]*)", block)[1]
    for part in comment.split(";"):
        codes, numbers = part.split(":")
        for code in codes.split(","):
            drops[code.strip()] = {int(n) for n in numbers.split()}
    return drops


def _multipl_e_counts() -> dict[str, int]:
    """The MultiPL-E row of the doc's "Problem counts" table, by language code."""
    text = DOC.read_text()
    table = [line for line in text[text.index("### Problem counts"):].splitlines()
             if line.startswith("|")]
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    row = next(line for line in table if line.startswith("| MultiPL-E"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    return {code: int(cells[i].split()[0]) for i, code in enumerate(header) if code}


@pytest.fixture(scope="module")
def humaneval():
    src = sources.load("humaneval")
    return src, analyze.analyze(src)


def test_the_doc_names_a_list_for_every_target_language():
    assert set(_documented_drops()) == set(NOT_IN_MULTIPL_E)


@pytest.mark.parametrize("code", sorted(NOT_IN_MULTIPL_E))
def test_the_documented_problems_are_multipl_es(humaneval, code):
    src, analyses = humaneval
    rows, _ = build.build_rows(src, languages.get(code), analyses, show_progress=False)
    # the doc's selection: a row's number is the second part of its name (HumanEval_12_longest)
    selected = {int(r["name"].split("_")[1]) for r in rows} - _documented_drops()[code]
    assert selected == set(range(164)) - NOT_IN_MULTIPL_E[code]
    assert len(selected) == _multipl_e_counts()[code]
