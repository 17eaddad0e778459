"""Which of Pyright's diagnostics drop a function: an error on its own `def` line does (the
first of its own lines), a warning anywhere does not."""

import json

import pytest

from multiplt.corpus import typecheck
from multiplt.corpus.typecheck import TypeCheckFilter
from tests.unit.corpus.helpers import rows_of

pytestmark = pytest.mark.slow

MODULE = '''
import re

DIGITS = re.compile(r"\\d+")


def sig_error(x: UndefinedType) -> int:
    """Its only error is in its signature, on the def line."""
    return len(DIGITS.findall(str(x)))


def warns_only(x: int) -> int:
    """A comparison used as a statement: reportUnusedExpression, a warning in standard mode."""
    x == 1
    return len(DIGITS.findall(str(x)))


def clean(text: str) -> list[str]:
    """No diagnostic at all."""
    return DIGITS.findall(text)
'''


def test_an_error_on_the_def_line_drops_and_a_warning_does_not(monkeypatch):
    reports = []
    real_run = typecheck.Processes.run

    def keeping_the_report(self, argv, folder, timeout):
        proc = real_run(self, argv, folder, timeout)
        reports.append(json.loads(proc.stdout))
        return proc

    monkeypatch.setattr(typecheck.Processes, "run", keeping_the_report)
    rows = rows_of(MODULE)
    assert all(row["context"] for row in rows)  # each function's lines start after its context
    excluded = []
    kept = TypeCheckFilter().run(rows, excluded)

    # what Pyright said: one error, on sig_error's def line; one warning, inside warns_only
    (report,) = reports
    found = {(d["severity"], d.get("rule")) for d in report["generalDiagnostics"]}
    assert found == {("error", "reportUndefinedVariable"), ("warning", "reportUnusedExpression")}

    assert [r["entrypoint"] for r in kept] == ["warns_only", "clean"]
    (dropped,) = excluded
    assert dropped["entrypoint"] == "sig_error" and dropped["reason"] == "type_error"
    assert dropped["detail"].startswith("reportUndefinedVariable")
