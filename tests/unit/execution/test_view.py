"""What of the host's files a program sees (view.py; security review F5).

The sandbox binds the host's root read-only; uid 65534 exists only inside its user namespace, so
without root the kernel checks a program's file access against the executor's own uid and groups:
programs read the executor's home (tokens, cloud credentials) and connected to unix sockets of its
groups (a docker.sock is a full escape: connect works through a read-only mount and despite the
network namespace). As root they read what is world-readable (checkouts, data). Empty read-only
tmpfs now cover the places of user data and sockets, in every way a program starts; these tests
plant secrets and sockets there and try them from inside, as root (the sandbox user is then
65534 on the host too) and, where this machine allows, with the executor run as another user.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import socket
import subprocess
import threading
import uuid

import pytest

from multiplt import languages
from multiplt.commands import stage
from multiplt.errors import MultipltError, PlatformError
from multiplt.execution import executor, native, view
from multiplt.execution.bwrap import SANDBOX_PATH
from multiplt.execution.sandbox import Sandbox
from tests.unit.execution.hostile_programs import peek_host
from tests.unit.execution.test_warm import MODES, _sandbox

PY = languages.get("py")
#: top-level places of user data and sockets that must look empty to a program where they exist
PLACES = ("/home", "/root", "/run", "/var", "/mnt", "/srv", "/media")
SECRET = "MULTIPLT-TEST-SECRET"
AS_ROOT = os.geteuid() == 0


def _places() -> list[str]:
    return [p for p in PLACES if os.path.isdir(p) and not os.path.islink(p)]


def _listen(address: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.bind(address)
    s.listen(8)  # a connect succeeds on the backlog: nothing needs to accept it
    return s


class Planted:
    """Secrets and sockets planted on the host, removed afterwards."""

    def __init__(self):
        self.token = f"multiplt-test-{uuid.uuid4().hex[:12]}"
        self.secrets: list[str] = []
        self.sockets: list[str] = []
        #: what a program gets for each secret and socket (the name of the exception)
        self.expected: dict[str, str] = {}
        self.abstract = self.token
        self._remove: list[str] = []
        self._sockets: list[socket.socket] = []

    def folder(self, parent: str, mode: int = 0o755, owner: tuple[int, int] | None = None) -> str:
        path = os.path.join(parent, self.token)
        os.mkdir(path)
        self._remove.append(path)
        if owner:
            os.chown(path, *owner)
        os.chmod(path, mode)
        return path

    def secret(self, path: str, mode: int = 0o644, owner: tuple[int, int] | None = None,
               expected: str = "FileNotFoundError") -> str:
        with open(path, "w") as f:
            f.write(f"{SECRET} {path}")
        if path not in self._remove and not any(path.startswith(r + "/") for r in self._remove):
            self._remove.append(path)
        if owner:
            os.chown(path, *owner)
        os.chmod(path, mode)
        self.secrets.append(path)
        self.expected[path] = expected
        return path

    def listener(self, path: str, mode: int = 0o777, owner: tuple[int, int] | None = None,
                 expected: str = "FileNotFoundError") -> None:
        self._sockets.append(_listen(path))
        self._remove.append(path)
        if owner:
            os.chown(path, *owner)
        os.chmod(path, mode)
        self.sockets.append(path)
        self.expected[path] = expected

    def abstract_listener(self) -> None:
        self._sockets.append(_listen("\0" + self.abstract))

    def close(self) -> None:
        for s in self._sockets:
            s.close()
        for path in reversed(self._remove):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.lexists(path):
                os.unlink(path)


@pytest.fixture
def planted(monkeypatch):
    """As root: a world-readable secret in a folder of /home, one in /root, one in the home (a
    folder of /opt, as AIRFLOW_HOME in the Airflow image), one at the top of `/`, world-writable
    sockets in a folder of /run and at the top of `/` (as a docker.sock bound into a container):
    all within the sandbox user's reach but for the covers. Otherwise: a secret in this user's
    home and a socket in its XDG_RUNTIME_DIR, where they are covered places."""
    plant = Planted()
    try:
        if AS_ROOT:
            plant.secret(os.path.join(plant.folder("/home"), "token"))
            plant.secret(os.path.join("/root", plant.token))
            if os.path.isdir("/opt"):
                home = plant.folder("/opt")
                monkeypatch.setenv("XDG_CACHE_HOME", native._cache_dir())  # the init's, as before
                monkeypatch.setenv("HOME", home)
                plant.secret(os.path.join(home, "credentials"))
            if os.path.isdir("/run"):
                plant.listener(os.path.join(plant.folder("/run"), "docker.sock"))
            # /dev/null over it, on a mount without devices: opening it is refused
            plant.secret(f"/{plant.token}", expected="PermissionError")
            plant.listener(f"/{plant.token}.sock", expected="ConnectionRefusedError")
        else:
            hidden = view.current(for_nobody=False).hidden
            home = os.path.realpath(os.path.expanduser("~"))
            if view._within(home, hidden) and os.access(home, os.W_OK):
                plant.secret(os.path.join(plant.folder(home, 0o700), "token"), 0o600)
            runtime = os.path.realpath(os.environ.get("XDG_RUNTIME_DIR") or "/nonexistent")
            if view._within(runtime, hidden) and os.access(runtime, os.W_OK):
                plant.listener(os.path.join(plant.folder(runtime, 0o700), "docker.sock"), 0o600)
        plant.abstract_listener()
        if not plant.secrets:
            pytest.skip("not root, and this user's home is not a covered place it may write to")
        yield plant
    finally:
        plant.close()


def _allowed(sandbox: Sandbox, place: str) -> set[str]:
    """What a covered place may list: the first folder of each path bound back under it."""
    bound = [*getattr(sandbox.view, "exposed", ()), sandbox._tmp_root]
    return {p[len(place) + 1:].split("/")[0] for p in bound if p.startswith(place + "/")}


@pytest.mark.parametrize("mode", list(MODES))
def test_a_program_reaches_no_secret_and_no_socket_of_the_host(planted, mode):
    with _sandbox(mode) as sandbox:
        finished = sandbox.run(PY, peek_host(planted.secrets, _places(), planted.sockets,
                                             planted.abstract, find=True), 30)
        assert finished.exit_code == 0, finished
        seen = json.loads(finished.stdout)
        # not even there (an empty cover, not a permission the executor's user might lack), or
        # /dev/null in its place (a top-level file)
        assert seen["read"] == {p: planted.expected[p] for p in planted.secrets}, seen
        assert seen["connect"] == {**{p: planted.expected[p] for p in planted.sockets},
                                   # abstract sockets live in the network namespace, the
                                   # sandbox's own (true before the covers too)
                                   "abstract": "ConnectionRefusedError"}, seen
        for place in _places():
            assert set(seen["listed"][place]) <= _allowed(sandbox, place), (place, seen)
        assert seen["sockets"] == [], f"unix sockets a program can reach: {seen['sockets']}"


# ---- which places are covered -------------------------------------------------------------------

def test_every_top_level_folder_but_the_systems_is_covered():
    hidden = view.current(for_nobody=AS_ROOT).hidden
    blanked = view.current(for_nobody=AS_ROOT).blanked
    for entry in os.scandir("/"):
        if entry.name.startswith("multiplt-test-"):
            continue  # planted by a test running beside this one
        if entry.is_dir(follow_symlinks=False):
            assert (entry.path in hidden) == (entry.name not in view.SYSTEM), entry.path
        elif not entry.is_symlink():
            assert entry.path in blanked, entry.path
    for place in _places():
        assert place in hidden


@pytest.mark.parametrize("place", ["/", "/usr", "/usr/local", "/usr/local/bin", "/etc", "/opt",
                                   "/usr/lib", "/tmp"])
def test_a_home_or_folder_that_holds_the_runtimes_is_not_covered(place, monkeypatch):
    monkeypatch.setenv("HOME", place)
    monkeypatch.setenv("AIRFLOW_HOME", place)
    monkeypatch.chdir(place)
    hidden = view.current(for_nobody=AS_ROOT).hidden
    for needed in ("/", "/usr", "/usr/local", "/usr/local/bin", "/usr/bin", "/usr/lib", "/etc",
                   "/opt"):
        assert not view._within(needed, hidden), (needed, hidden)


@pytest.mark.skipif(not AS_ROOT or not os.path.isdir("/opt"), reason="plants a folder in /opt")
def test_the_executors_home_cwd_and_data_places_are_covered_wherever_they_are(monkeypatch):
    plant = Planted()
    try:
        parent = plant.folder("/opt")
        places = {name: os.path.join(parent, name) for name in ("home", "cwd", "airflow", "hf")}
        for path in places.values():
            os.mkdir(path)
        monkeypatch.setenv("HOME", places["home"])
        monkeypatch.setenv("AIRFLOW_HOME", places["airflow"])
        monkeypatch.setenv("HF_HOME", places["hf"])
        monkeypatch.chdir(places["cwd"])
        hidden = view.current(for_nobody=True).hidden
        assert set(places.values()) <= set(hidden)
        assert "/opt" not in hidden
        os.chmod(parent, 0o700)  # out of uid 65534's reach: nothing to cover, nor could bwrap
        assert not set(places.values()) & set(view.current(for_nobody=True).hidden)
        assert set(places.values()) <= set(view.current(for_nobody=False).hidden)
    finally:
        plant.close()


#: prints, for each folder, what a program lists there and whether it is a mount of its own
PEEK_FOLDERS = r"""
import json, os
seen = {}
for path in PATHS:
    try:
        covered = os.stat(path).st_dev != os.stat(os.path.dirname(path)).st_dev
        seen[path] = [sorted(os.listdir(path)), covered]
    except OSError as e:
        seen[path] = type(e).__name__
print(json.dumps(seen))
"""


@pytest.mark.skipif(not AS_ROOT or not os.path.isdir("/opt"), reason="plants a folder in /opt")
def test_the_executors_folders_are_hidden_from_programs_wherever_they_are():
    """`execute` with --in and a new --out in /opt, which stays visible: a program sees neither
    its own completions file nor the output folder (made before the sandbox starts, so that it is
    covered as well)."""
    plant = Planted()
    try:
        parent = plant.folder("/opt")
        run, out = os.path.join(parent, "run"), os.path.join(parent, "new", "out")
        os.mkdir(run)
        peek = PEEK_FOLDERS.replace("PATHS", repr([run, out]))
        with gzip.open(os.path.join(run, "P.json.gz"), "wt") as f:
            json.dump({"name": "P", "language": "py", "prompt": "", "tests": "",
                       "completions": [peek]}, f)
        executor.execute(run, out, workers=1)
        with gzip.open(os.path.join(out, "P.results.json.gz"), "rt") as f:
            (result,) = json.load(f)["results"]
        assert result["status"] == "OK", result
        assert json.loads(result["stdout"]) == {run: [[], True], out: [[], True]}
    finally:
        plant.close()


@pytest.mark.parametrize("place", ["/", "/usr", "/usr/local", "/etc", "/opt", "/bin", "/lib"])
def test_a_folder_that_cannot_be_hidden_is_named(place):
    assert view.unhideable(place)
    with pytest.raises(MultipltError, match="cannot hide"):
        view.current(for_nobody=AS_ROOT, private=[place])


@pytest.mark.parametrize("place", ["/opt/multiplt-run", "/usr/share/multiplt-run", "/tmp/x",
                                   "/srv/run", "/dev/shm/run"])
def test_a_folder_below_a_system_folder_can_be_hidden(place):
    assert view.unhideable(place) is None


def test_an_executor_folder_that_cannot_be_hidden_is_refused_before_anything_runs(tmp_path):
    with gzip.open(tmp_path / "P.json.gz", "wt") as f:
        json.dump({"name": "P", "language": "py", "prompt": "", "tests": "",
                   "completions": ["print(1)"]}, f)
    with pytest.raises(MultipltError, match=r"^--out /etc: programs must not see .*/etc is a "
                                            r"system folder"):
        executor.execute(str(tmp_path), "/etc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["P.json.gz"]


def test_an_output_folder_made_for_a_run_that_fails_stays_for_another_run_into_it(tmp_path,
                                                                                   monkeypatch):
    """Runs A and B into one new --out: A makes it, B finds it and covers it (its sandbox's
    check), then A fails. The folder stays (empty): B's programs run with a cover on it, which
    cannot be mounted where the folder is gone."""
    (tmp_path / "run").mkdir()
    with gzip.open(tmp_path / "run" / "P.json.gz", "wt") as f:
        json.dump({"name": "P", "language": "py", "prompt": "", "tests": "",
                   "completions": ["print(1)"]}, f)
    run, out = str(tmp_path / "run"), tmp_path / "new" / "out"
    a_checks, b_checks, seen, failed = threading.Event(), threading.Event(), [], []

    def check(self):
        if threading.current_thread().name == "run-a":
            assert out.is_dir()  # made before the sandbox decides
            a_checks.set()
            assert b_checks.wait(30)
            raise PlatformError("run A: no isolation available")
        b_checks.set()
        a.join(30)
        seen.append(out.is_dir())
        raise PlatformError("run B stops here")

    def run_a():
        try:
            executor.execute(run, str(out))
        except PlatformError as exc:
            failed.append(str(exc))

    monkeypatch.setattr(Sandbox, "check", check)
    a = threading.Thread(target=run_a, name="run-a")
    a.start()
    assert a_checks.wait(30)
    with pytest.raises(PlatformError, match="run B"):
        executor.execute(run, str(out))
    assert failed == ["run A: no isolation available"] and seen == [True]
    assert list(out.iterdir()) == []


def test_a_refused_folder_is_named_as_the_caller_names_it(tmp_path):
    """A command that executes a folder of its own names it as its user knows it, not as a flag
    of `multiplt execute` the user never gave."""
    with gzip.open(tmp_path / "P.json.gz", "wt") as f:
        json.dump({"name": "P", "language": "py", "prompt": "", "tests": "",
                   "completions": ["print(1)"]}, f)
    with pytest.raises(MultipltError) as caught:
        executor.execute(str(tmp_path), "/etc", labels=("the completions folder", "the results folder"))
    assert str(caught.value).startswith("the results folder /etc: programs must not see the run's "
                                        "completions and results, but the sandbox cannot hide this "
                                        "folder (/etc is a system folder)")
    assert "--" not in str(caught.value)


@pytest.mark.skipif(not AS_ROOT or not os.path.isdir("/opt"), reason="plants a folder in /opt")
def test_a_stage_root_is_hidden_from_the_command_it_runs(monkeypatch):
    plant = Planted()
    try:
        root = plant.folder("/opt")
        monkeypatch.setenv("MULTIPLT_STAGE_ROOT", "/nonexistent")  # restored afterwards
        ran = []
        monkeypatch.setattr(os, "execv", lambda path, argv: ran.append(argv))
        stage.run_command(argparse.Namespace(step="run", root=root, argv=["--", "--version"]))
        assert ran and ran[0][-1] == "--version"
        assert root in view.current(for_nobody=True).hidden
    finally:
        plant.close()


def test_what_the_platforms_programs_read_is_bound_back():
    coverage = view._exposed_candidates()
    current = view.current(for_nobody=AS_ROOT)
    for path in coverage:
        assert (path in current.exposed) == view._within(path, current.hidden), path


def test_binds_go_between_the_covers_and_their_remount():
    args = view.View(("/home", "/run"), ("/home/u/pkg",), ("/x.sock",)).args(
        ["--ro-bind", "/a", "/home/a"])
    assert args == ["--perms", "0755", "--size", "4096", "--tmpfs", "/home",
                    "--perms", "0755", "--size", "4096", "--tmpfs", "/run",
                    "--ro-bind", "/dev/null", "/x.sock", "--ro-bind", "/a", "/home/a",
                    "--ro-bind", "/home/u/pkg", "/home/u/pkg",
                    "--remount-ro", "/home", "--remount-ro", "/run"]


@pytest.mark.parametrize("mode", list(MODES))
def test_coverage_py_still_imports_from_the_executors_environment(mode):
    pytest.importorskip("coverage")
    from multiplt.testgen.validate import coverage_path

    program = (f"import sys\nsys.path.insert(0, {coverage_path()!r})\nimport coverage\n"
               "print(coverage.Coverage)\n")
    with _sandbox(mode) as sandbox:
        finished = sandbox.run(PY, program, 30)
    assert finished.exit_code == 0 and "Coverage" in finished.stdout, finished


# ---- the executor run as a user that is not root ------------------------------------------------

#: the executor's uid and its supplementary group in the test below (unused on this machine)
USER, GROUP = 52731, 52732

EXECUTOR = r"""
import json, os, socket, sys
sys.path.insert(0, os.environ["MULTIPLT_TEST_CHECKOUT"])
from multiplt import languages
from multiplt.execution.sandbox import Sandbox

secrets, sock, program = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
# The premise: this user itself may read them and connect (its own files, its group's socket).
control = {"read": [open(p).read() for p in secrets]}
s = socket.socket(socket.AF_UNIX)
s.connect(sock)
s.close()
control["connect"] = "connected"
out = {"control": control, "uid": os.getuid(), "groups": os.getgroups()}
for warm in (True, False):
    with Sandbox(warm=warm) as sandbox:
        finished = sandbox.run(languages.get("py"), program, 30)
        out[sandbox.mode] = [finished.exit_code, finished.stdout, finished.stderr[-2000:]]
print(json.dumps(out))
"""


def _user_is_free() -> bool:
    import grp
    import pwd

    try:
        pwd.getpwuid(USER)
    except KeyError:
        pass
    else:
        return False
    try:
        grp.getgrgid(GROUP)
    except KeyError:
        return True
    return False


@pytest.mark.skipif(not AS_ROOT, reason="starts the executor as another user (needs root)")
def test_an_executor_that_is_not_root_lends_programs_none_of_its_files_or_groups(tmp_path):
    python = shutil.which("python3", path=SANDBOX_PATH)
    if not shutil.which("setpriv") or not python or not _user_is_free():
        pytest.skip("needs setpriv, python3 on the sandbox's PATH and a free uid")
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
    plant = Planted()
    try:
        home = plant.folder("/home", 0o700, (USER, USER))  # its home: only it may enter
        plant.secret(os.path.join(home, "token"), 0o600, (USER, USER))
        if os.path.isdir("/opt"):  # AIRFLOW_HOME as in the Airflow image, here its own too
            airflow = plant.folder("/opt", 0o700, (USER, USER))
            plant.secret(os.path.join(airflow, "airflow.cfg"), 0o600, (USER, USER))
        else:
            airflow = home
        # a socket of one of its groups (docker.sock is root:docker 0660)
        plant.listener(os.path.join(plant.folder("/run"), "docker.sock"), 0o660, (0, GROUP))
        plant.abstract_listener()
        env = {"PATH": SANDBOX_PATH, "HOME": home, "AIRFLOW_HOME": airflow, "LANG": "C.UTF-8",
               "XDG_CACHE_HOME": os.path.join(home, ".cache"), "MULTIPLT_TEST_CHECKOUT": checkout}
        as_user = ["setpriv", f"--reuid={USER}", f"--regid={USER}", f"--groups={GROUP}", "--",
                   python, "-I", "-c"]
        probe = subprocess.run([*as_user, f"import sys; sys.path.insert(0, {checkout!r}); "
                                "import multiplt.execution.sandbox"],
                               env=env, cwd=home, capture_output=True, text=True, timeout=60)
        if probe.returncode != 0:
            pytest.skip(f"uid {USER} cannot import this checkout: {probe.stderr.strip()[-300:]}")
        program = peek_host(plant.secrets, _places(), plant.sockets, plant.abstract)
        ran = subprocess.run([*as_user, EXECUTOR, json.dumps(plant.secrets), plant.sockets[0],
                              program],
                             env=env, cwd=home, capture_output=True, text=True, timeout=300)
        assert ran.returncode == 0, ran.stderr[-3000:]
        out = json.loads(ran.stdout)
        assert out["uid"] == USER and GROUP in out["groups"]
        assert out["control"]["connect"] == "connected"
        assert all(text.startswith(SECRET) for text in out["control"]["read"])
        for mode in ("warm", "bubblewrap per program"):
            exit_code, stdout, stderr = out[mode]
            assert exit_code == 0, (mode, stdout, stderr)
            seen = json.loads(stdout)
            assert seen["read"] == {p: "FileNotFoundError" for p in plant.secrets}, (mode, seen)
            assert seen["connect"] == {plant.sockets[0]: "FileNotFoundError",
                                       "abstract": "ConnectionRefusedError"}, (mode, seen)
            assert seen["listed"]["/home"] == [] and seen["listed"]["/run"] == [], (mode, seen)
    finally:
        plant.close()

