"""Hostile programs against the sandbox, in every installed language (issue 4, point 4).

First each limit is shown to be in force, from inside the sandbox, in each language. Then one
`execute()` runs a folder with one problem per (language, attack): completion 0 is the attack,
completion 1 a known-good program, so the results show the executor going on after each attack.
Every attack must end non-OK within its timeout + 2 s and leave no process behind (no process
left in its PID namespace, as bubblewrap reported it), and no file outside its directory may
change; the listener on the host's 127.0.0.1 must see zero connections.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import uuid

import pytest

from multiplt import languages
from multiplt.execution import executor, preflight, privileges
from multiplt.execution.sandbox import NOBODY, Limits, Sandbox
from multiplt.languages.base import OK, Language
from tests.unit.execution.helpers import installed, processes_left_in
from tests.unit.execution.hostile_programs import CASES, COMMENT, INSPECT, PROGRAMS, fill

pytestmark = pytest.mark.slow

LANGS = [code for code in PROGRAMS if installed(code)]
TIMEOUT_S = 5.0
WORKERS = 4


def _skip_missing():
    missing = [code for code in PROGRAMS if not installed(code)]
    return f"runtimes not installed, skipped: {missing}" if missing else ""


@pytest.fixture(scope="module")
def listener():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        server.setblocking(False)
        yield server


@pytest.fixture(scope="module")
def victim_dir():
    # Outside /tmp (the sandbox mounts its own /tmp there) and world-writable, so that only the
    # sandbox's read-only mount stands between the programs and these files.
    path = f"/var/tmp/multiplt-hostile-{uuid.uuid4().hex[:8]}"
    os.makedirs(path)
    os.chmod(path, 0o777)
    with open(f"{path}/victim.txt", "w") as f:
        f.write("original")
    os.chmod(f"{path}/victim.txt", 0o666)
    yield path
    for name in os.listdir(path):
        os.unlink(os.path.join(path, name))
    os.rmdir(path)


@pytest.mark.parametrize("code", list(INSPECT))
def test_limits_in_force(code):
    """Checked first, from inside, in each language: uid, process and memory limits, own PID
    namespace, no network but loopback."""
    if not installed(code):
        pytest.skip(f"{code} runtime not installed")
    _check_inside(code, Sandbox())


@pytest.mark.skipif(os.geteuid() != 0, reason="the setpriv path is taken only by root")
def test_limits_in_force_via_setpriv(monkeypatch):
    """Root where threads cannot be dropped: setpriv and prlimit set the same limits."""
    monkeypatch.setattr(privileges, "supported", lambda: False)
    sandbox = Sandbox()
    sandbox.check()
    assert sandbox._spawner is None
    for code in ("py", "lua"):
        if installed(code):
            _check_inside(code, sandbox)


def _check_inside(code, sandbox):
    lang = languages.get(code)
    finished = sandbox.run(lang, INSPECT[code], lang.timeout * 2)
    assert finished.exit_code == 0, finished.stderr
    # where the language has a pre-loaded runtime, this ran as a fork of it (issue 18)
    preloaded = type(lang).fork_server is not Language.fork_server
    assert finished.sandbox_info.get("forked", False) == (preloaded and sandbox.warm)
    out = finished.stdout
    status = dict(line.split(":", 1) for line in out[:out.index("Limit ")].splitlines()
                  if ":\t" in line)
    assert status["Uid"].split() == [str(NOBODY)] * 4
    assert status["Gid"].split() == [str(NOBODY)] * 4
    assert int(status["Pid"]) <= 3, "not in its own PID namespace"
    limits = {line[:26].strip(): line[26:].split() for line in out.splitlines()
              if line.startswith("Max ")}
    assert limits["Max processes"][:2] == [str(Limits().processes)] * 2
    assert limits["Max address space"][:2] == [str(Limits().address_space)] * 2
    net_dev = out[out.index("Inter-|"):].splitlines()[2:]
    interfaces = [line.split(":")[0].strip() for line in net_dev if ":" in line]
    assert interfaces == ["lo"], f"network interfaces seen: {interfaces}"


def test_limits_enforced_not_just_set():
    """The limits bite: forks stop at the process limit, a 3 GB allocation fails, output is cut
    at 1 MiB per stream, the root file system is read-only, /tmp is private and writable."""
    lang = languages.get("py")
    if not installed("py"):
        pytest.skip("python3 not installed")
    program = (
        "import os, sys, time\n"
        "n = 0\n"
        "while n < 200:\n"
        "    try:\n        pid = os.fork()\n    except OSError:\n        break\n"
        "    if pid == 0:\n        time.sleep(5); os._exit(0)\n"
        "    n += 1\n"
        "print('forks', n)\n"
        "try:\n    bytearray(3 * 2**30); print('alloc ok')\nexcept MemoryError:\n    print('alloc refused')\n"
        "for path in ('/etc/multiplt-hostile', '/tmp/mine'):\n"
        "    try:\n        open(path, 'w').write('x'); print('wrote', path)\n"
        "    except OSError as e:\n        print('refused', path, e.errno)\n"
        "print('stdin', repr(sys.stdin.read()))\n"
        "sys.stderr.write('e' * (3 << 20))\n"
        "sys.stdout.flush(); sys.stderr.flush()\n"
        "os._exit(0)\n")
    finished = Sandbox().run(lang, program, 20)
    lines = finished.stdout.splitlines()
    forks = int(lines[0].split()[1])
    assert 0 < forks < Limits().processes, lines[0]
    assert "alloc refused" in lines
    assert any(line.startswith("refused /etc/multiplt-hostile 30") for line in lines)  # EROFS
    assert "wrote /tmp/mine" in lines
    assert "stdin ''" in lines
    assert len(finished.stderr) == Limits().output


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory, listener, victim_dir):
    """One execute() over every (language, attack), with a spy on Sandbox.run that records how
    long each program took and which PID namespace it had."""
    folder = tmp_path_factory.mktemp("hostile")
    port = listener.getsockname()[1]
    for code in LANGS:
        good = preflight.known_program(languages.get(code), good=True)
        for case in CASES:
            attack = fill(PROGRAMS[code][case], port, victim_dir, os.getpid())
            tag = f"{COMMENT[code]} after {case}" + (" *)" if code == "ml" else "")
            doc = {"name": f"hostile_{code}_{case}", "language": code, "prompt": "", "tests": "",
                   "completions": [attack, good + "\n" + tag], "stop_tokens": [],
                   "temperature": 0.0, "top_p": 1.0, "max_tokens": 0}
            with gzip.open(folder / f"hostile_{code}_{case}.json.gz", "wt") as f:
                json.dump(doc, f)
    shm_before = set(os.listdir("/dev/shm"))
    seen: dict[str, object] = {}
    real_run = Sandbox.run

    def spy(self, lang, program, timeout):
        finished = real_run(self, lang, program, timeout)
        seen[program] = finished
        return finished

    Sandbox.run = spy
    try:
        executor.execute(str(folder), workers=WORKERS, timeout=TIMEOUT_S)
    finally:
        Sandbox.run = real_run
    namespaces = {f.sandbox_info.get("pid-namespace") for f in seen.values()}
    return {"folder": folder, "seen": seen, "namespaces": namespaces, "shm_before": shm_before}


def _results(run, code, case):
    with gzip.open(run["folder"] / f"hostile_{code}_{case}.results.json.gz", "rt") as f:
        return json.load(f)["results"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("code", list(PROGRAMS))
def test_attack_contained(hostile_run, code, case):
    if code not in LANGS:
        pytest.skip(_skip_missing())
    attack, good = _results(hostile_run, code, case)
    finished = hostile_run["seen"][attack["program"]]
    assert attack["status"] != OK, f"{code} {case}: {attack}"
    assert finished.duration <= TIMEOUT_S + 2, f"{code} {case} took {finished.duration:.1f}s"
    assert finished.sandbox_info.get("pid-namespace"), "bubblewrap did not report the namespace"
    assert len(attack["stdout"]) <= Limits().output and len(attack["stderr"]) <= Limits().output
    # The executor went on: the next program of the same problem ran normally.
    assert good["status"] == OK and good["exit_code"] == 0, good["stderr"][-2000:]


def test_no_process_left_behind(hostile_run):
    """Nothing runs on in any program's PID namespace. (bubblewrap exits as soon as it knows the
    exit code, so a namespace's init can linger as a zombie: dead, holding no resources, and
    reaped by the host's init; the executor reaps it itself when it is the host's init.)
    A namespace number that another test run's sandbox got once ours was gone is told apart by
    that sandbox's ancestry (processes_left_in)."""
    namespaces = hostile_run["namespaces"]
    assert None not in namespaces  # every program had its own PID namespace (ids get reused)
    left = processes_left_in(namespaces)
    assert left == [], f"processes left in sandbox namespaces: {left}"


def test_no_file_changed_outside(hostile_run, victim_dir):
    assert sorted(os.listdir(victim_dir)) == ["victim.txt"]
    with open(f"{victim_dir}/victim.txt") as f:
        assert f.read() == "original"
    assert "multiplt-hostile" not in set(os.listdir("/dev/shm")) - hostile_run["shm_before"]


def test_zero_connections(hostile_run, listener):
    with pytest.raises(BlockingIOError):
        listener.accept()
