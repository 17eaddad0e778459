"""Issue 12 point 5: the sandbox's three ways to run a program are three runners behind one
interface, chosen once per batch (in check()), with the same verdicts."""

from __future__ import annotations

import pytest

from multiplt import languages
from multiplt.execution import runners
from multiplt.execution.preflight import known_program
from multiplt.execution.runners import BwrapRunner, Runner, UnsafeRunner, WarmRunner
from multiplt.execution.sandbox import Sandbox
from tests.unit.execution.helpers import installed

CHOICES = {
    "warm": (dict(warm=True), WarmRunner),
    "per-program": (dict(warm=False), BwrapRunner),
    "unsafe": (dict(unsafe_no_sandbox=True), UnsafeRunner),
}


@pytest.mark.parametrize("choice", list(CHOICES))
def test_one_runner_chosen_once_with_the_same_verdicts(choice, monkeypatch):
    kwargs, cls = CHOICES[choice]
    with Sandbox(**kwargs) as sandbox:
        sandbox.check()
        runner = sandbox.runner
        assert type(runner) is cls and sandbox.mode == cls.mode
        assert issubclass(cls, Runner)
        probes = []
        monkeypatch.setattr(cls, "probe", lambda self: probes.append(self))
        for code in ("py", "lua"):
            if not installed(code):
                continue
            lang = languages.get(code)
            for good, want in ((True, "OK"), (False, "AssertionError")):
                finished = sandbox.run(lang, known_program(lang, good), lang.timeout * 2)
                assert lang.classify(finished.exit_code, finished.stdout, finished.stderr) == want
        sandbox.check()
        assert sandbox.runner is runner and probes == []  # chosen once, never probed again


def test_the_sandbox_hands_every_program_to_its_runner(monkeypatch):
    """Sandbox.run does no running itself: the runner gets the program, its file name, the time
    limit and the language's libraries when (and only when) the runner mounts them."""
    calls = []

    class Recording(Runner):
        mode = "recording"
        mounts_libraries = True

        def run(self, lang, program, name, timeout, lib, server=None):
            calls.append((lang.code, program, name, timeout, lib, server))
            return runners.Finished(0, "", "", False, 0.0, {})

    lua = languages.get("lua")
    with Sandbox(warm=False) as sandbox:
        sandbox.check()
        sandbox.runner.close()
        sandbox.runner = Recording()
        sandbox.run(lua, "print(1)", 7.0)
        lib = sandbox._library(lua)
        Recording.mounts_libraries = False
        sandbox.run(lua, "print(2)", 8.0)
    # not a runner that forks: no pre-loaded runtime
    assert calls == [("lua", "print(1)", "program.lua", 7.0, lib, None),
                     ("lua", "print(2)", "program.lua", 8.0, None, None)]
