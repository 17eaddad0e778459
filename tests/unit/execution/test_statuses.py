"""Each status in each installed language, from real runs in the sandbox (issue 4, point 2).

All programs run once, concurrently, in a module fixture; each (language, status, case) is then
its own test. A completion passes only with status OK and exit code 0.
"""

from __future__ import annotations

import concurrent.futures

import pytest

from multiplt import languages
from multiplt.execution.sandbox import Sandbox
from multiplt.languages.base import OK, STATUSES, TIMEOUT
from tests.unit.execution.helpers import installed
from tests.unit.execution.status_programs import PROGRAMS, cases

pytestmark = pytest.mark.slow

TIMEOUT_CASE_S = 2.0


def _all_cases():
    # every language of the registry; one without programs has no cases here and fails
    # test_every_status_is_covered_for_every_language (and the fast per-language table test)
    for code in languages.names():
        if code not in PROGRAMS:
            continue
        for status, label, _ in cases(code):
            marks = [] if installed(code) else [pytest.mark.skip(reason=f"{code} runtime not installed")]
            yield pytest.param(code, status, label, marks=marks, id=f"{code}-{status}-{label}")


@pytest.fixture(scope="module")
def outcomes():
    sandbox = Sandbox()
    sandbox.check()

    def run(code, status, label, program):
        lang = languages.get(code)
        limit = TIMEOUT_CASE_S if status == TIMEOUT else lang.timeout * 2
        finished = sandbox.run(lang, program, limit)
        got = TIMEOUT if finished.timed_out else lang.classify(finished.exit_code, finished.stdout,
                                                              finished.stderr)
        return got, finished

    todo = [(code, s, label, prog) for code in languages.names() if code in PROGRAMS and installed(code)
            for s, label, prog in cases(code)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = {(c, s, label): pool.submit(run, c, s, label, p) for c, s, label, p in todo}
    return {key: f.result() for key, f in futures.items()}


@pytest.mark.parametrize("code,status,label", list(_all_cases()))
def test_status(outcomes, code, status, label):
    got, finished = outcomes[(code, status, label)]
    assert got == status, (f"{code} {label}: expected {status}, got {got} "
                           f"(exit {finished.exit_code})\nstdout: {finished.stdout[-1500:]}\n"
                           f"stderr: {finished.stderr[-1500:]}")
    if status == OK:
        assert finished.exit_code == 0
    if status == TIMEOUT:
        assert finished.exit_code == -1 and finished.duration < TIMEOUT_CASE_S + 2


def test_every_status_is_covered_for_every_language():
    for code in languages.names():  # the registry's, not the table's: a language without rows fails
        assert code in PROGRAMS, f"{code}: no programs in tests/unit/execution/status_programs.py"
        assert set(PROGRAMS[code]) == set(STATUSES), code
        assert all(PROGRAMS[code].values()), f"{code}: a status without a program"
    assert set(PROGRAMS) == set(languages.names()), "programs for a language the registry lacks"
