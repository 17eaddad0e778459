"""Issue 12 point 5: the sandbox's three ways to run a program are three runners behind one
interface, chosen once per batch (in check()), with the same verdicts."""

from __future__ import annotations

import json
import os

import pytest

from multiplt import languages
from multiplt.execution import bwrap, runners
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


@pytest.mark.skipif(not installed("lua"), reason="lua5.4 not installed")
def test_unsandboxed_programs_never_search_the_sandbox_library_mount(tmp_path, monkeypatch):
    """Outside the sandbox LIBRARY_MOUNT is a path in the host's world-writable /tmp: a luaunit
    planted there (by another user, or an earlier program) must not be what programs load. The
    mount is moved to a folder of the test's own, so nothing is planted in the real /tmp."""
    from multiplt.languages import lua

    mount = str(tmp_path / "mount")
    monkeypatch.setattr(lua, "LIBRARY_MOUNT", mount)
    monkeypatch.setattr(runners, "LIBRARY_MOUNT", mount)
    (tmp_path / "mount").mkdir()
    (tmp_path / "mount" / "luaunit.lua").write_text(  # every assert passes
        "local lu = {}\nfunction lu.assertEquals() end\nlu.LuaUnit = {run = function() return 0 end}\n"
        "return lu\n")
    lang = languages.get("lua")
    assert mount in "".join(lang.env().values())  # what the sandboxed runners use
    with Sandbox(unsafe_no_sandbox=True) as sandbox:
        finished = sandbox.run(lang, known_program(lang, False), lang.timeout * 2)
    assert lang.classify(finished.exit_code, finished.stdout, finished.stderr) == "AssertionError"


@pytest.mark.parametrize("code", languages.names())
def test_no_language_reaches_the_library_mount_unsandboxed(code, monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(runners, "run_bounded", lambda argv, **kw: seen.append(kw["env"]))
    lang = languages.get(code)
    runner = UnsafeRunner(Sandbox().limits, str(tmp_path))
    try:
        runner.run(lang, "", f"p.{lang.file_ext}", 1.0, None)
    finally:
        runner.close()  # the executor is dumpable again
    assert not [k for k, v in seen[0].items() if runners.LIBRARY_MOUNT in v]


SECRETS = {"HF_TOKEN": "hf_secret", "AWS_SECRET_ACCESS_KEY": "aws-secret",
           "AWS_ACCESS_KEY_ID": "aws-id", "OPENAI_API_KEY": "sk-secret",
           "MULTIPLT_SOMETHING_PRIVATE": "private"}


def test_unsandboxed_programs_get_the_sandbox_environment_not_the_executors(monkeypatch, tmp_path):
    """The executor's environment holds credentials; a program run without the sandbox (as the
    benchmark probe does wherever no sandbox starts) sees what a sandboxed one sees: the base
    environment and its language's, with its own HOME and TMPDIR, and the host's PATH."""
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    lang = languages.get("py")
    program = "import json, os\nprint(json.dumps(dict(os.environ)))\n"
    with Sandbox(unsafe_no_sandbox=True) as sandbox:
        finished = sandbox.run(lang, program, lang.timeout * 2)
    assert finished.exit_code == 0, finished.stderr
    env = json.loads(finished.stdout)
    assert not set(SECRETS) & set(env), env
    assert not [v for v in env.values() if any(s in v for s in SECRETS.values())]
    # exactly what the runner hands the program (a python3 that is a pyenv shim adds its own)
    seen = []
    monkeypatch.setattr(runners, "run_bounded", lambda argv, **kw: seen.append(kw["env"]))
    for code in languages.names():
        lang = languages.get(code)
        runner = UnsafeRunner(Sandbox().limits, str(tmp_path))
        try:
            runner.run(lang, "", f"p.{lang.file_ext}", 1.0, None)
        finally:
            runner.close()  # the executor is dumpable again
        env = seen.pop()
        assert set(env) == set(bwrap.BASE_ENV) | set(lang.env()), code
        assert env["PATH"] == os.environ["PATH"]
        assert env["HOME"] == env["TMPDIR"] and env["HOME"].startswith(str(tmp_path))
        assert {key: env[key] for key in ("LANG", "LC_ALL")} == \
            {key: bwrap.BASE_ENV[key] for key in ("LANG", "LC_ALL")}


@pytest.mark.parametrize("code", languages.names())
def test_every_runtime_runs_unsandboxed_with_that_environment(code, monkeypatch):
    """With nothing of the executor's environment but PATH, each runtime still finds what it
    needs: the known-good program passes and the known-bad one fails its assertion."""
    if not installed(code):
        pytest.skip(f"{code} runtime not installed")
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    lang = languages.get(code)
    with Sandbox(unsafe_no_sandbox=True) as sandbox:
        for good, want in ((True, "OK"), (False, "AssertionError")):
            finished = sandbox.run(lang, known_program(lang, good), lang.timeout * 2)
            assert lang.classify(finished.exit_code, finished.stdout, finished.stderr) == want, \
                finished.stderr
