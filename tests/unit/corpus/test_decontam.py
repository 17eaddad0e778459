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


@pytest.mark.parametrize("task, line", [
    ("HumanEval/2", "return number % 1.0"), ("HumanEval/27", "return string.swapcase()"),
    ("HumanEval/34", "return sorted(list(set(l)))"), ("HumanEval/42", "return [(e + 1) for e in l]"),
    ("HumanEval/45", "return a * h / 2.0"), ("HumanEval/54", "return set(s0) == set(s1)"),
    ("HumanEval/60", "return sum(range(n + 1))"), ("HumanEval/138", "return n%2 == 0 and n >= 8"),
])
def test_short_humaneval_solutions_are_matched_verbatim(humaneval, task, line):
    """MultiPL-T matched every HumanEval solution verbatim but the 4 trivial ones it named: a
    function holding one of the others among its own lines is dropped, whatever its length."""
    source = (f'def helper(l, string, number, a, h, s0, s1, n):\n    """Logs, then answers."""\n'
              f'    if not l:\n        print("empty")\n    {line}\n')
    block = decontam.DecontaminationFilter(humaneval)
    excluded: list[dict] = []
    assert block.run([row_of(source)], excluded) == []
    assert excluded[0]["reason"] == "benchmark_overlap"
    assert excluded[0]["detail"] == f"verbatim text of humaneval:{task}"


def test_only_multiplt_s_four_trivial_solutions_are_exempt(humaneval):
    """`return x + y` (HumanEval/53), `return len(string)` (/23), `return n**2` (/41) and
    `return ''.join(strings)` (/28) are too common to match verbatim; the reviewer's corpus9
    case: `return sorted(list(set(l)))` (/34) among other lines is dropped, `return
    len(string)` kept."""
    assert decontam.TRIVIAL_SOLUTIONS == {"return x + y": "HumanEval/53",
                                          "return len(string)": "HumanEval/23",
                                          "return n**2": "HumanEval/41",
                                          "return ''.join(strings)": "HumanEval/28"}
    for line in decontam.TRIVIAL_SOLUTIONS:
        assert not any(text.strip() == line for text in humaneval.verbatim)
    unique = ('def unique_sorted(l: list) -> list:\n    """Return unique elements, sorted, after '
              'logging."""\n    if not l:\n        print("empty")\n    return sorted(list(set(l)))\n')
    count = ('def count_chars(string: str) -> int:\n    """Count characters but complain on empty '
             'input."""\n    if string == "":\n        raise ValueError("empty")\n    return len(string)\n')
    assert verdict(decontam.DecontaminationFilter(humaneval), unique) == "benchmark_overlap"
    assert verdict(decontam.DecontaminationFilter(humaneval), count) is None
    # matched stripped, as MultiPL-T did: also where the line does not start the statement
    inline = ('def uniq(l):\n    """Unique, sorted."""\n    if l: return sorted(list(set(l)))\n'
              '    return []\n')
    assert verdict(decontam.DecontaminationFilter(humaneval), inline) == "benchmark_overlap"


def test_an_empty_solution_matches_nothing(tmp_path):
    path = tmp_path / "bench.jsonl"
    path.write_text(json.dumps({"task_id": "E/0", "prompt": "def f(x):\n    \"\"\"Empty.\"\"\"\n",
                                "canonical_solution": "\n", "entry_point": "f"}) + "\n")
    block = decontam.DecontaminationFilter(decontam.load((str(path),)))
    assert verdict(block, 'def g(a):\n    """Other words."""\n    b = a * 3\n    return b - 1\n') is None
