"""An unsandboxed program cannot read the executor's environment (credentials) through /proc.

`--unsafe-no-sandbox` and the benchmark probe's fallback where no sandbox starts (the worker
image, which holds credentials in its environment) run programs as plain children of the same
uid. The kernel lets such a child read its parent's /proc/<ppid>/environ and /proc/<ppid>/mem
while the parent is dumpable; the executor is not dumpable while its UnsafeRunner is open
(runners.hold_undumpable). Root with CAP_SYS_PTRACE (or CAP_SYS_ADMIN, CAP_PERFMON for environ)
reads either way, so as root the executor runs here with Docker's default capabilities only, as
root in the worker container does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from multiplt.execution import runners

SECRET = "multiplt-test-secret-of-the-executor"

#: Docker's default capabilities (a container's root has these, not CAP_SYS_PTRACE)
DOCKER_CAPS = ("chown", "dac_override", "fsetid", "fowner", "mknod", "net_raw", "setgid",
               "setuid", "setfcap", "setpcap", "net_bind_service", "sys_chroot", "kill",
               "audit_write")

#: the executor: a process holding a credential in its environment that runs one program
#: unsandboxed and prints what the program saw, then whether it is dumpable again
EXECUTOR = textwrap.dedent(r"""
    import json, os, sys
    from multiplt import languages
    from multiplt.execution import runners
    from multiplt.execution.sandbox import Sandbox

    PROGRAM = '''
    import json, os
    seen = {"ppid": os.getppid()}
    try:
        with open(f"/proc/{os.getppid()}/environ", "rb") as f:
            seen["environ"] = "read " + ("the secret" if b"@SECRET@" in f.read() else "no secret")
    except OSError:
        seen["environ"] = "refused"
    try:  # opening is the check (reading needs an address the executor maps)
        open(f"/proc/{os.getppid()}/mem", "rb").close()
        seen["mem"] = "opened"
    except OSError:
        seen["mem"] = "refused"
    print(json.dumps(seen))
    '''.replace("@SECRET@", os.environ["AWS_SECRET_ACCESS_KEY"])
    lang = languages.get("py")
    with Sandbox(unsafe_no_sandbox=True) as sandbox:
        finished = sandbox.run(lang, PROGRAM, 30)
    print(json.dumps({"pid": os.getpid(), "program": finished.stdout, "stderr": finished.stderr,
                      "dumpable_after": runners._prctl(runners.PR_GET_DUMPABLE)}))
""")


def test_an_unsandboxed_program_cannot_read_the_executors_environment():
    argv = [sys.executable, "-c", EXECUTOR]
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("as root the capabilities must be dropped: setpriv (util-linux)")
        caps = ",".join(f"+{cap}" for cap in DOCKER_CAPS)
        argv = ["setpriv", f"--bounding-set=-all,{caps}", "--inh-caps=-all", *argv]
    env = {**os.environ, "AWS_SECRET_ACCESS_KEY": SECRET}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                              os.path.dirname(os.path.abspath(__file__))))))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    seen = json.loads(report["program"])
    assert seen["ppid"] == report["pid"], report  # the program's parent is the executor
    assert (seen["environ"], seen["mem"]) == ("refused", "refused"), seen
    assert report["dumpable_after"] == 1  # restored once the unsafe runner closed


def test_holds_nest_and_the_last_release_restores():
    before = runners._prctl(runners.PR_GET_DUMPABLE)
    runners.hold_undumpable()
    runners.hold_undumpable()
    assert runners._prctl(runners.PR_GET_DUMPABLE) == 0
    runners.release_undumpable()
    assert runners._prctl(runners.PR_GET_DUMPABLE) == 0
    runners.release_undumpable()
    assert runners._prctl(runners.PR_GET_DUMPABLE) == before
