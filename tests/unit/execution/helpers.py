"""Shared helpers of the execution tests: which languages can run here, and a sandbox."""

from __future__ import annotations

import pytest

from multiplt import languages
from multiplt.execution.preflight import missing_binaries

RUNNABLE = ["py", "rkt", "r", "ml", "lua", "jl"]


def installed(code: str) -> bool:
    return not missing_binaries(languages.get(code))


def language_params(codes=RUNNABLE):
    """pytest params, one per language; a language whose runtime is missing is skipped with the
    reason printed (Julia is not packaged by Debian)."""
    params = []
    for code in codes:
        missing = missing_binaries(languages.get(code))
        marks = [pytest.mark.skip(reason=f"{code}: {', '.join(missing)} not installed")] if missing else []
        params.append(pytest.param(code, marks=marks, id=code))
    return params
