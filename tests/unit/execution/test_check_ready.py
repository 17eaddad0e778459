"""preflight.check_ready, the check testgen and translate run before sampling: a missing program
or test library is bad setup (MultipltError, exit 2, not retried) with the install hint once; a
known program that timed out twice (a loaded machine) stays a PlatformError (exit 3, retried),
as it is in execute."""

from __future__ import annotations

import pytest

from multiplt import languages
from multiplt.errors import MultipltError, PlatformError
from multiplt.execution import preflight
from multiplt.execution.process import Finished


def test_a_missing_runtime_is_bad_setup_with_the_hint_once(monkeypatch):
    monkeypatch.setattr(preflight, "missing_binaries", lambda lang, unsafe=False: ["racket"])
    with pytest.raises(MultipltError) as caught:
        preflight.check_ready([languages.get("rkt")], unsafe=True)
    assert not isinstance(caught.value, PlatformError) and caught.value.exit_code == 2
    message = str(caught.value)
    assert "racket not installed" in message and message.count(preflight.INSTALL_HINT) == 1


def test_a_wrong_status_is_bad_setup(monkeypatch):
    """A known-good program that fails its asserts: the runtime or its test library misbehaves."""
    monkeypatch.setattr(preflight, "missing_binaries", lambda lang, unsafe=False: [])
    monkeypatch.setattr(preflight, "run_with_retries", lambda *args: Finished(
        exit_code=1, stdout="", stderr="module not found: luaunit", timed_out=False, duration=0.1))
    with pytest.raises(MultipltError) as caught:
        preflight.check_ready([languages.get("lua")], unsafe=True)
    assert caught.value.exit_code == 2
    assert "luaunit" in str(caught.value) and str(caught.value).endswith(preflight.INSTALL_HINT)


def test_a_known_program_that_keeps_timing_out_stays_a_platform_error(monkeypatch):
    monkeypatch.setattr(preflight, "missing_binaries", lambda lang, unsafe=False: [])
    monkeypatch.setattr(preflight, "run_with_retries", lambda *args: Finished(
        exit_code=-1, stdout="", stderr="", timed_out=True, duration=20.0))
    with pytest.raises(PlatformError) as caught:
        preflight.check_ready([languages.get("lua")], unsafe=True)
    assert caught.value.exit_code == 3 and "Timeout" in str(caught.value)
