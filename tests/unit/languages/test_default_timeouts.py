"""Each language's default timeout is MultiPL-E's (its evaluation/src/eval_*.py): 5 s for R
and Julia, 15 s (safe_subprocess's default) for the others, as docs/execution.md says. Only
the class attribute is read: nothing here needs a runtime installed (Julia has none here)."""

from __future__ import annotations

import pathlib

import pytest

from multiplt import languages

#: code -> seconds (every language: tests/unit/languages/test_per_language_tables.py checks)
TIMEOUTS = {"jl": 5.0, "lua": 15.0, "ml": 15.0, "py": 15.0, "r": 5.0, "rkt": 15.0}

DOC = pathlib.Path(__file__).resolve().parents[3] / "docs" / "execution.md"


@pytest.mark.parametrize("code", languages.names())
def test_default_timeout_is_multipl_e_s(code):
    assert languages.get(code).timeout == TIMEOUTS[code]


def test_the_doc_states_the_same_defaults():
    """docs/execution.md's sentence is what TIMEOUTS holds: 5 s for R and Julia, 15 s else."""
    text = " ".join(DOC.read_text().split())
    assert "Timeouts default to the language's (15 s; 5 s for R and Julia, as MultiPL-E)" in text
    assert TIMEOUTS == {code: 5.0 if languages.get(code).name in ("r", "julia") else 15.0
                        for code in TIMEOUTS}
