"""A test value holding NUL, built into each language and run in the real runtime: Lua writes
it so that Lua reads the same bytes; R cannot hold it, so its asserts are dropped with the
reason (rather than written as another string, a test no solution could pass)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from multiplt import languages
from multiplt.benchmarks import build, sources
from multiplt.languages.base import OK

pytestmark = pytest.mark.slow
TEST = ("def check(candidate):\n"
        "    assert candidate('ab') == 2\n"
        "    assert candidate('xyz') == 3\n"
        "    assert candidate('') == 0\n"
        "    assert candidate('\\x001') == 2\n"
        "    assert candidate('a\\x00\\x0077') == 5\n")
PROBLEM = {"task_id": "Nul/0", "entry_point": "length", "test": TEST,
           "prompt": 'def length(s: str) -> int:\n    """The length of s."""\n',
           "canonical_solution": "    return len(s)\n"}
BODIES = {"lua": "    return #s\nend\n", "r": "\n  return(nchar(s))\n}\n"}


@pytest.fixture(scope="module")
def analyses(tmp_path_factory):
    from multiplt.benchmarks import analyze

    path = tmp_path_factory.mktemp("nul") / "nul.jsonl"
    path.write_text(json.dumps(PROBLEM) + "\n")
    return analyze.analyze(sources.load(str(path)))


@pytest.mark.parametrize("code, kept", [("lua", 5), ("r", 3)])
def test_nul_test_values_run_or_are_dropped_with_the_reason(analyses, code, kept, tmp_path):
    lang = languages.get(code)
    if not all(shutil.which(b) for b in lang.binaries):
        pytest.skip(f"{code} runtime not installed")
    rows, report = build.build_rows(sources.Source("nul", [a.problem for a in analyses], ""), lang,
                                    analyses=analyses, show_progress=False)
    entry = report["problems"]["Nul_0_length"]
    assert entry["translated_asserts"] == kept
    dropped = [d["reason"] for d in entry["dropped_asserts"]]
    assert dropped == ([] if code == "lua" else
                       ["R strings cannot hold the NUL character of '\\x001'",
                        "R strings cannot hold the NUL character of 'a\\x00\\x0077'"])
    row = rows[0]
    path = tmp_path / f"program.{lang.file_ext}"
    path.write_bytes((row["prompt"] + BODIES[code] + "\n" + row["tests"]).encode())
    proc = subprocess.run(lang.command(str(path)), capture_output=True, text=True, timeout=60,
                          env={**os.environ, **lang.env()})
    assert lang.classify(proc.returncode, proc.stdout, proc.stderr) == OK, (row["tests"], proc.stderr)
