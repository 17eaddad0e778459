"""Collection uses each function's first --n samples: a completion folder sampled with a larger
--n (a rerun into the same OUT with a smaller one) gives what a fresh run with that --n gives;
fewer than --n samples is refused."""

from __future__ import annotations

import pytest

from multiplt import storage
from multiplt.errors import MultipltError
from multiplt.execution import files
from multiplt.translation.collect import collect

PROMPT = "-- canonical python\nlocal function f(xs)\n"
NONCE = "0123456789abcdef" * 2
PROBLEM = {"sha1": "ab" * 20, "id": 7, "entrypoint": "f", "prompt": PROMPT,
           "clean_prompt": "local function f(xs)\n", "tests_nonce": NONCE}
BODIES = ["  return #xs\nend\n", "  return nil\nend\n", "  return 1 + #xs\nend\n",
          "  local total = 0\n  for _, x in ipairs(xs) do total = total + x end\n  return total\nend\n",
          "  return xs[1] or 0\nend\n", "  return table.concat(xs, ',')\nend\n", "  return -1\nend\n"]
RUN = {"model": "replay", "revision": None}


def write_results(folder: str, samples: int) -> None:
    """A results file as the executor writes it: sample i's completion and its verdict (sample 1
    fails, the others pass)."""
    results = [{"program": PROMPT + body + "\nlu = require('luaunit')\n",
                "status": "OK" if i != 1 else "Exception", "exit_code": 0 if i != 1 else 1,
                "stdout": f"OK\n{NONCE}\n" if i != 1 else ""}
               for i, body in enumerate(BODIES[:samples])]
    storage.write_json(files.results_uri(folder, PROBLEM["sha1"]),
                       {"name": PROBLEM["sha1"], "completions": BODIES[:samples], "results": results})


def test_a_rerun_with_a_smaller_n_equals_a_fresh_run(tmp_path):
    folder, work = str(tmp_path / "completions"), str(tmp_path / "work")
    write_results(folder, 7)
    seven = collect([PROBLEM], folder, work, "lua", 1.0, RUN, 7)
    assert seven[2]["translations_sampled"] == 7 and len(seven[0]) == 6
    rerun = collect([PROBLEM], folder, work, "lua", 1.0, RUN, 3)  # same folder and work, --n 3

    fresh_folder = str(tmp_path / "fresh")
    write_results(fresh_folder, 3)
    fresh = collect([PROBLEM], fresh_folder, str(tmp_path / "fresh-work"), "lua", 1.0, RUN, 3)
    assert rerun == fresh
    kept, excluded, counts = rerun
    assert counts == {"translations_sampled": 3, "passed": 2, "after_todo": 2,
                      "after_exact_dedup": 2, "after_rouge_l": 2}
    assert [r["sample"] for r in kept] == [0, 2] and {r["pass_rate"] for r in kept} == {0.6667}
    assert [r["sample"] for r in excluded] == [1]


def test_fewer_samples_than_n_are_refused(tmp_path):
    folder = str(tmp_path / "completions")
    write_results(folder, 2)
    with pytest.raises(MultipltError, match=r"only 2 of 3 samples \(--n\) were generated"):
        collect([PROBLEM], folder, str(tmp_path / "work"), "lua", 1.0, RUN, 3)
    assert not (tmp_path / "work").exists()
