"""Benchmark sources read as JSONL split lines at "\n" only: a problem whose prompt holds a raw
U+2028 (JSON written with ensure_ascii=False) is one line, not two broken ones."""

from __future__ import annotations

import gzip
import json

import pytest

from multiplt.benchmarks import sources
from multiplt.errors import MultipltError

PROBLEM = {"task_id": "Demo/0", "entry_point": "f", "canonical_solution": "    return x\n",
           "prompt": 'def f(x):\n    """Line\u2028separated\u2029paragraph\x85next."""\n',
           "test": "def check(candidate):\n    assert candidate(1) == 1\n"}


@pytest.mark.parametrize("gz", [False, True])
def test_raw_unicode_line_separators_in_a_problem(tmp_path, gz):
    other = {**PROBLEM, "task_id": "Demo/1"}
    text = "".join(json.dumps(p, ensure_ascii=False) + "\r\n" for p in (PROBLEM, other)) + "\n"
    data = text.encode()
    path = tmp_path / ("p.jsonl.gz" if gz else "p.jsonl")
    path.write_bytes(gzip.compress(data) if gz else data)
    loaded = sources.load(str(path))
    assert [p.task_id for p in loaded.problems] == ["Demo/0", "Demo/1"]
    assert loaded.problems[0].prompt == PROBLEM["prompt"]


def test_a_bad_line_is_named_by_its_newline_count(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(PROBLEM, ensure_ascii=False) + "\n\n{not json\n", encoding="utf-8")
    with pytest.raises(MultipltError, match=r"line 3 is not JSON"):
        sources.load(str(path))


def test_task_ids_whose_problem_names_collide_are_named(tmp_path):
    """`A/1` and `A 1` are distinct task_ids that make one problem name (`A_1_f`): the error
    names that name and both task_ids, not a duplicate task_id."""
    path = tmp_path / "p.jsonl"
    rows = [{**PROBLEM, "task_id": "A/1"}, {**PROBLEM, "task_id": "A 1"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(MultipltError, match=r"task_ids 'A/1' and 'A 1' \(entry points 'f', 'f'\) both "
                                            r"make the problem name 'A_1_f'; rename one"):
        sources.load(str(path))
    path.write_text("".join(json.dumps(r) + "\n" for r in (rows[0], rows[0])), encoding="utf-8")
    with pytest.raises(MultipltError, match=r"task_id 'A/1' appears twice"):
        sources.load(str(path))


def test_a_benchmark_source_with_a_key_twice_is_refused(tmp_path):
    """The benchmark build's source reader: a problem with "prompt" twice, in JSONL or an array."""
    problem = ('{"task_id": "A/0", "entry_point": "f", "prompt": "def f():\\n", '
               '"test": "def check(c):\\n    pass\\n", "prompt": "def g():\\n"}')
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"task_id": "A/1", "entry_point": "f", "prompt": "def f():\n",
                                "test": "def check(c): pass\n"}) + "\n" + problem + "\n")
    with pytest.raises(MultipltError, match=r"p.jsonl: line 2 writes the key 'prompt' twice"):
        sources.load(str(path))
    path.write_text(f"[{problem}]")
    with pytest.raises(MultipltError, match=r"p.jsonl writes the key 'prompt' twice"):
        sources.load(str(path))
