"""The overrides file is checked against the whole source: a selection (--problems, --limit) that
leaves an overridden problem out gives no warning, an override naming no problem of the source
still does."""

from __future__ import annotations

import logging

from multiplt.benchmarks import analyze
from multiplt.benchmarks.build import build_benchmark

WARNING = "overrides name problems not in the source"


def test_a_selection_without_the_overridden_problems_does_not_warn(caplog, monkeypatch):
    """MultiPL-E's own problem set (docs/languages.md) leaves HumanEval_32 and HumanEval_137 out;
    the canonical solutions are not run here (their results do not decide the warning)."""
    from multiplt.benchmarks import probe, sources
    from multiplt.benchmarks.build import select

    humaneval = sources.load("humaneval")
    names = [p.name for p in humaneval.problems
             if p.name not in ("HumanEval_32_find_zero", "HumanEval_137_compare_one")]
    monkeypatch.setattr(probe, "run", lambda *args, **kwargs: {})
    overrides = analyze.overrides_for("humaneval")  # only the two left out (none to apply)
    monkeypatch.setattr(analyze, "overrides_for", lambda label: {
        name: overrides[name] for name in ("HumanEval_32_find_zero", "HumanEval_137_compare_one")})
    caplog.set_level(logging.WARNING, logger="multiplt")
    analyze.analyze(select(humaneval, None, ",".join(names)))
    assert WARNING not in caplog.text


def test_an_override_of_no_problem_of_the_source_still_warns(tmp_path, caplog, monkeypatch):
    overrides_for = analyze.overrides_for
    monkeypatch.setattr(analyze, "overrides_for", lambda label: {
        **overrides_for(label), "HumanEval_999_no_such_problem": {"reason": "a typo"}})
    caplog.set_level(logging.WARNING, logger="multiplt")
    build_benchmark("humaneval", "lua", str(tmp_path / "lua.jsonl"), limit=1)
    assert f"{WARNING}: HumanEval_999_no_such_problem" in caplog.text
