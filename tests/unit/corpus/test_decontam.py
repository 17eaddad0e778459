"""Decontamination: MultiPL-T's verbatim rule, the normalized match it misses, and benchmark input."""

import json

import pytest

from multiplt.corpus import decontam
from multiplt.corpus.normalize import canonical
from multiplt.errors import MultipltError
from tests.unit.corpus.helpers import row_of, verdict

ADD = {"task_id": "T/0", "entry_point": "add_all",
       "prompt": 'def add_all(xs: list) -> int:\n    """Sum the items of xs, skipping None values."""\n',
       "canonical_solution": "    total = 0\n    for x in xs:\n        if x is not None:\n"
                             "            total += x\n    return total\n"}


@pytest.fixture(scope="module")
def humaneval():
    return decontam.load(("humaneval",))


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "bench.jsonl"
    path.write_text(json.dumps(ADD) + "\n" + json.dumps({"task_id": 7, "text": "Write a function to "
                    "find the shared elements of two lists.", "code": "def similar(a, b):\n    "
                    "res = tuple(set(a) & set(b))\n    return res\n"}) + "\n")
    return decontam.load((str(path),))


def test_humaneval_has_every_problem(humaneval):
    assert len(humaneval.canonical) == 164


def test_same_solution_with_other_names_comments_and_layout_is_caught(tiny):
    block = decontam.DecontaminationFilter(tiny)
    renamed = ('def sum_present(values):\n    """Adds up what is there."""\n    acc = 0  # running sum\n'
               '    for v in values:\n        if v is not None: acc += v\n    return acc\n')
    assert verdict(block, renamed) == "benchmark_overlap"
    different = renamed.replace("acc += v", "acc -= v")
    assert verdict(decontam.DecontaminationFilter(tiny), different) is None


def test_verbatim_solution_and_reflowed_docstring_are_caught(tiny):
    verbatim = 'def g(xs):\n    """other words"""\n' + ADD["canonical_solution"] + "    # done\n"
    assert verdict(decontam.DecontaminationFilter(tiny), verbatim) == "benchmark_overlap"
    reflowed = 'def h(xs):\n    """Sum the items\n    of xs,   skipping None values."""\n    return sorted(xs)[0]\n'
    assert verdict(decontam.DecontaminationFilter(tiny), reflowed) == "benchmark_overlap"


def test_mbpp_rows_give_code_and_text(tiny):
    block = decontam.DecontaminationFilter(tiny)
    mbpp = 'def common(first, second):\n    """Shared."""\n    out = tuple(set(first) & set(second))\n    return out\n'
    assert verdict(block, mbpp) == "benchmark_overlap"
    assert "T/0" in tiny.canonical[canonical(row_of(ADD["prompt"] + ADD["canonical_solution"])["_node"])]


def test_unknown_or_malformed_benchmarks_are_errors(tmp_path):
    with pytest.raises(MultipltError, match="unknown benchmark 'mbpp'"):
        decontam.load(("mbpp",))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "x"}\n')
    with pytest.raises(MultipltError, match="neither prompt"):
        decontam.load((str(bad),))
