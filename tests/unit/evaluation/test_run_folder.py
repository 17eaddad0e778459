"""Issue 12 point 2: one module owns the run folder (file names, the scores CSV, the table)."""

from __future__ import annotations

import pathlib
import re

import pytest

import multiplt
from multiplt.errors import MultipltError
from multiplt.evaluation import run_folder

PACKAGE = pathlib.Path(multiplt.__file__).parent


def test_file_names():
    assert run_folder.completions_name("HumanEval_0.json.gz") == "HumanEval_0"
    assert run_folder.completions_name("HumanEval_0.json") == "HumanEval_0"
    for side in ("HumanEval_0.results.json.gz", "_multiplt_run.yaml", "_scores.csv", ".json.gz",
                 "_per_problem.parquet", ".hidden.json.gz", "notes.txt"):
        assert run_folder.completions_name(side) is None, side
    assert run_folder.results_name("HumanEval_0.results.json.gz") == "HumanEval_0"
    assert run_folder.results_name("HumanEval_0.results.json") == "HumanEval_0"
    assert run_folder.results_name("HumanEval_0.json.gz") is None
    assert run_folder.results_file("P") == "P.results.json.gz"
    # side files are never mistaken for problems by MultiPL-E's globs
    for side in (run_folder.RUN_FILE, run_folder.SCORES_FILE, run_folder.PER_PROBLEM_FILE):
        assert side.startswith("_") and not side.endswith((".json", ".json.gz"))


def test_scores_csv_round_trips_under_multipl_e_header():
    rows = [{"Dataset": "d", "Pass@k": 1, "Estimate": 0.25, "NumProblems": 4,
             "MinCompletions": 2, "MaxCompletions": 10}]
    text = run_folder.scores_csv(rows)
    assert text.splitlines() == ["Dataset,Pass@k,Estimate,NumProblems,MinCompletions,MaxCompletions",
                                 "d,1,0.25,4,2,10"]
    assert run_folder.parse_scores(text, "u") == rows
    with pytest.raises(MultipltError, match="u: header is"):
        run_folder.parse_scores(text.replace("Pass@k", "k"), "u")
    with pytest.raises(MultipltError, match="u line 2: estimate 1.5"):
        run_folder.parse_scores(text.replace("0.25", "1.5"), "u")
    with pytest.raises(MultipltError, match="no pass@k rows"):
        run_folder.parse_scores(text.splitlines()[0] + "\n", "u")


def test_format_table():
    table = run_folder.format_table(("name", "value", "note"), [("a", 0.5, None), ("long-name", 12, "x")])
    assert table == ("name       value   note\n"
                     "---------  ------  ----\n"
                     "a          0.5000\n"
                     "long-name  12      x")


def test_no_other_module_spells_the_run_folder():
    """The file names, the scores header and the table layout appear once, in run_folder.py."""
    patterns = {
        "a run folder file name": re.compile(r"""["'](_multiplt_run\.yaml|_scores\.csv|"""
                                             r"""_per_problem\.parquet|\.results\.json(\.gz)?)["']"""),
        "the scores header": re.compile(r"""["']Dataset["'],\s*["']Pass@k["']"""),
        "a table formatter": re.compile(r"""ljust\(|["']-["']\s*\*\s*w"""),
    }
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "run_folder.py" and path.parent.name == "evaluation":
            continue
        text = path.read_text(encoding="utf-8")
        found += [f"{path.relative_to(PACKAGE)}: {what}" for what, pattern in patterns.items()
                  if pattern.search(text)]
    assert found == []


def test_run_folder_name():
    assert run_folder.run_folder_name("humaneval", "rkt", "nuprl/MultiPL-T-StarCoderBase_1b", "rkt-multiplt-epoch5", 0.2) \
        == "humaneval-rkt-nuprl_MultiPL_T_StarCoderBase_1b-rkt_multiplt_epoch5-0.2"
    name = run_folder.run_folder_name("humaneval", "lua", "s3://bucket/ckpt/x/", None, 0.8)
    assert name == "humaneval-lua-bucket_ckpt_x-main-0.8"
    assert "/" not in name and len(name.split("-")) == 5
