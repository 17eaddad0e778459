"""Shared helpers of the execution tests: which languages can run here, and a sandbox."""

from __future__ import annotations

import pytest

from multiplt import languages
from multiplt.execution.preflight import missing_binaries



def installed(code: str) -> bool:
    return not missing_binaries(languages.get(code))


def language_params(codes=None):
    """pytest params, one per language (default: every language of the registry); a language
    whose runtime is missing is skipped with the reason printed (Julia is not packaged by Debian)."""
    codes = languages.names() if codes is None else codes
    params = []
    for code in codes:
        missing = missing_binaries(languages.get(code))
        marks = [pytest.mark.skip(reason=f"{code}: {', '.join(missing)} not installed")] if missing else []
        params.append(pytest.param(code, marks=marks, id=code))
    return params
