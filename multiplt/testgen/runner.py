"""The program that validates asserts INSIDE the sandbox (standard library only).

The host (validate.py) runs this file's source plus a call `main(<job JSON>)` as one sandboxed
Python program. It starts one interpreter, pre-imports common standard-library modules, and then
runs every assert of the job in its own forked child: `context + function + assert` compiled and
run as `__main__` of a fresh module, stdin/stdout/stderr on /dev/null, in a fresh working folder.
The verdict of an assert is its child's exit status, which only this process sees (waitpid): the
child has no handle on the result channel (closed before any untrusted code runs) and cannot
read this process's memory or descriptors (it is made non-dumpable). After each child this
process kills every process the child left behind (it is their subreaper), removes what the
child wrote in the scratch folder and, in its own IPC namespace, every SysV IPC object, so the
next assert starts as if alone. A child that kills or stops this process ends the job early; the
host then marks that assert failed and reruns the rest in a fresh program.

Coverage and types: after its asserts, a function's passing asserts run together in one more
child under coverage.py (imported from the path the host gives), with the entry point wrapped to
record the types of the arguments and results it sees; the child reports the executed statements
and those types. Result lines are JSON on this process's stdout.
"""

import ctypes
import json
import os
import select
import shutil
import signal
import sys
import time
import traceback
import types

PREIMPORT = ("re", "math", "collections", "itertools", "functools", "string", "typing", "copy",
             "heapq", "bisect", "json", "datetime", "random", "operator", "fractions", "decimal",
             "statistics", "dataclasses", "enum", "textwrap", "unicodedata", "threading")
PROGRAM = "program.py"
_MAX_SIGNATURES = 64
_MAX_ITEMS = 64


def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _protect_self(libc) -> None:
    if libc is not None:
        libc.prctl(4, 0, 0, 0, 0)    # PR_SET_DUMPABLE 0: no ptrace, no /proc/<pid>/fd or mem
        libc.prctl(36, 1, 0, 0, 0)   # PR_SET_CHILD_SUBREAPER: orphans of children come to us


def _parents() -> dict:
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rfind(b")") + 2:].split()
            table[int(name)] = (int(fields[1]), fields[0])
    return table


def _kill_descendants() -> None:
    """SIGKILL and reap every descendant of this process (orphans included: we are subreaper)."""
    me = os.getpid()
    for _ in range(1000):
        table = _parents()
        children: dict = {}
        for pid, (ppid, _state) in table.items():
            children.setdefault(ppid, []).append(pid)
        todo, found = [me], []
        while todo:
            for child in children.get(todo.pop(), []):
                found.append(child)
                todo.append(child)
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid = 0
            if pid == 0:
                break
        if not found:
            return
        time.sleep(0.001)


def _remove_ipc(libc) -> None:
    if libc is None:
        return
    for kind, remove in (("shm", lambda i: libc.shmctl(i, 0, None)),
                         ("sem", lambda i: libc.semctl(i, 0, 0)),
                         ("msg", lambda i: libc.msgctl(i, 0, None))):
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            parts = row.split()
            if len(parts) > 1:
                remove(int(parts[1]))


def _wipe(scratch: str, keep: str) -> None:
    for name in os.listdir(scratch):
        if name == keep:
            continue
        path = os.path.join(scratch, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass


def _fresh_main(path: str):
    module = types.ModuleType("__main__")
    module.__file__ = path
    module.__builtins__ = __builtins__
    sys.modules["__main__"] = module
    sys.argv = [path]
    if "random" in sys.modules:
        sys.modules["random"].seed()
    return module


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    return 1


def _run_program(text: str, path: str, report) -> int:
    """What `python3 path` would exit with for `text` (run here, in the forked child)."""
    module = _fresh_main(path)
    try:
        code = compile(text, path, "exec")
    except (SyntaxError, ValueError) as exc:
        report(type(exc).__name__)
        return 1
    try:
        exec(code, module.__dict__)
        threading = sys.modules.get("threading")
        if threading is not None and hasattr(threading, "_shutdown"):
            threading._shutdown()  # wait for non-daemon threads, as interpreter exit does
    except SystemExit as exc:
        return _exit_code(exc)
    except BaseException as exc:  # noqa: BLE001 (the program's own failure)
        report(type(exc).__name__)
        traceback.print_exc()
        return 1
    try:
        sys.stdout.flush()
    except Exception:  # noqa: BLE001
        return 120
    return 0


def _type_of(value, depth: int = 0):
    """A JSON tree of a value's type: ["int"], ["list", [elem...]], ["other", name]..."""
    kind = type(value)
    if value is None:
        return ["none"]
    if kind in (bool, int, float, str):
        return [kind.__name__]
    if depth > 8:
        return ["other", "too deep"]
    if kind is list:
        return ["list", _distinct(_type_of(v, depth + 1) for v in value[:_MAX_ITEMS])]
    if kind is tuple:
        if len(value) > _MAX_ITEMS:
            return ["vtuple", _distinct(_type_of(v, depth + 1) for v in value[:_MAX_ITEMS])]
        return ["tuple", [_type_of(v, depth + 1) for v in value]]
    if kind is dict:
        items = list(value.items())[:_MAX_ITEMS]
        return ["dict", _distinct(_type_of(k, depth + 1) for k, _ in items),
                _distinct(_type_of(v, depth + 1) for _, v in items)]
    return ["other", kind.__name__]


def _distinct(trees) -> list:
    out = []
    for tree in trees:
        if tree not in out:
            out.append(tree)
    return out


class _Channel:
    """One pipe from a child: a short report (exception name, coverage JSON) read after it ends."""

    def __init__(self):
        self.r, self.w = os.pipe()

    def child_report(self, text: str) -> None:
        try:
            os.write(self.w, text.encode("utf-8", "replace"))
        except OSError:
            pass

    def read(self, limit: int) -> str:
        os.close(self.w)
        data = b""
        os.set_blocking(self.r, False)
        try:
            while len(data) < limit:
                chunk = os.read(self.r, 65536)
                if not chunk:
                    break
                data += chunk
        except BlockingIOError:
            pass
        os.close(self.r)
        return data[:limit].decode("utf-8", "replace")


def _in_child(work, results_fd: int, channel: _Channel, scratch: str, index: int) -> int:
    """Fork; in the child run work(channel, folder) and exit with its code; return the pid."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 70
    try:
        os.setsid()
        os.close(results_fd)
        os.close(channel.r)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        folder = os.path.join(scratch, f"run{index}")
        os.mkdir(folder)
        os.chdir(folder)
        code = work(channel, folder)
    except BaseException:  # noqa: BLE001
        pass
    os._exit(code)


def _wait(pid: int, timeout: float):
    """(exit code, timed out): the exit code as bubblewrap reports it (128 + signal)."""
    timed_out, status = False, None
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd (kernel before 5.3): poll
        deadline = time.monotonic() + timeout
        while status is None:
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                status = raw
            elif time.monotonic() > deadline:
                timed_out = True
                break
            else:
                time.sleep(0.001)
    else:
        timed_out = not select.select([fd], [], [], max(timeout, 0))[0]
        os.close(fd)
    if status is None:
        if timed_out:
            os.kill(pid, signal.SIGKILL)
        status = os.waitpid(pid, 0)[1]
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status), timed_out
    return os.WEXITSTATUS(status), timed_out


def _assert_work(program: str):
    def work(channel, folder):
        return _run_program(program, os.path.join(folder, PROGRAM), channel.child_report)
    return work


def _coverage_work(prefix: str, passing: list, entry: str, coverage, template=None):
    def work(channel, folder):
        path = os.path.join(folder, PROGRAM)
        with open(path, "w", encoding="utf-8") as f:
            f.write(prefix)
        module = _fresh_main(path)
        signatures: list = []
        errors = 0
        cov = template or coverage.Coverage(data_file=None, include=[path], branch=False,
                                            config_file=False)
        cov.start()
        try:
            exec(compile(prefix, path, "exec"), module.__dict__)
            original = module.__dict__.get(entry)
            if callable(original):
                def recording(*args, **kwargs):
                    arg_types = [_type_of(a) for a in args]
                    result = original(*args, **kwargs)
                    sig = [arg_types, _type_of(result), sorted(kwargs)]
                    if sig not in signatures and len(signatures) < _MAX_SIGNATURES:
                        signatures.append(sig)
                    return result
                module.__dict__[entry] = recording
            for text in passing:
                try:
                    exec(compile(text, "<assert>", "exec"), module.__dict__)
                except BaseException:  # noqa: BLE001 (counted: passed alone, fails together)
                    errors += 1
        finally:
            cov.stop()
        _file, statements, _excluded, missing, _text = cov.analysis2(path)
        with open(os.path.join(folder, "report.json"), "w") as f:
            json.dump({"statements": statements, "missing": missing, "signatures": signatures,
                       "errors": errors}, f)
        return 0
    return work


def _status(report: str, code: int) -> str:
    """A failed child's status: the exception name it reported (the child's own word, used
    for counts only: the verdict is its exit status), else `exit N`."""
    import re

    lines = report.strip().splitlines()
    if not lines:
        return f"exit {code}"
    name = lines[-1].strip()
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,60}", name) else "Exception"


def _warm_up(coverage, scratch: str) -> None:
    """Measure a trivial program of our own once, so the lazy imports and set-up coverage.py
    does on its first start and first analysis are done before the children are forked."""
    folder = os.path.join(scratch, "warm-up")
    os.mkdir(folder)
    path = os.path.join(folder, PROGRAM)
    with open(path, "w") as f:
        f.write("def f(x):\n    return x\n\nf(1)\n")
    cov = coverage.Coverage(data_file=None, include=[path], branch=False, config_file=False)
    cov.start()
    try:
        exec(compile(open(path).read(), path, "exec"), {"__name__": "__warm_up__"})
    finally:
        cov.stop()
    cov.analysis2(path)
    shutil.rmtree(folder)


def _prepared(coverage, scratch: str):
    """A Coverage set up (not started) for every child's program path, so a child only starts
    and stops it: its set-up (paths, data) costs more than measuring a small function. Uses
    coverage.py's own start-up steps of the pinned version; None (each child makes its own)
    where they differ."""
    cov = coverage.Coverage(data_file=None, include=[os.path.join(scratch, "run*", PROGRAM)],
                            branch=False, config_file=False)
    try:
        cov._init()
        cov._inited_for_start = True
        cov._init_for_start()
        cov._post_init()
    except Exception:  # noqa: BLE001 (another coverage.py version: the plain way still works)
        return None
    return cov


def _read_report(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(1 << 20).decode("utf-8", "replace")
    except OSError:
        return ""


def main(job_text: str) -> None:
    job = json.loads(job_text)
    libc = _libc()
    _protect_self(libc)
    results_fd = os.dup(1)
    scratch = os.path.dirname(os.path.abspath(__file__))
    keep = os.path.basename(__file__)
    for name in PREIMPORT:
        __import__(name)
    coverage = template = None
    if job.get("coverage_path"):
        sys.path.insert(0, job["coverage_path"])
        import coverage  # noqa: F811 (the host's coverage.py, by path)
        sys.path.remove(job["coverage_path"])
        _warm_up(coverage, scratch)
        template = _prepared(coverage, scratch)

    def emit(record) -> None:
        os.write(results_fd, (json.dumps(record) + "\n").encode())

    emit({"ready": True})
    runs = 0
    for fi, fn in enumerate(job["functions"]):
        passing = []
        for ai, text in enumerate(fn["asserts"]):
            channel = _Channel()
            pid = _in_child(_assert_work(fn["prefix"] + "\n\n" + text + "\n"), results_fd,
                            channel, scratch, runs)
            runs += 1
            code, timed_out = _wait(pid, job["timeout"])
            error = channel.read(200)
            _kill_descendants()
            _wipe(scratch, keep)
            if job.get("own_namespaces"):
                _remove_ipc(libc)
            status = "Timeout" if timed_out else "OK" if code == 0 else _status(error, code)
            emit({"f": fi, "a": ai, "exit": -1 if timed_out else code, "status": status})
            if code == 0 and not timed_out:
                passing.append(text)
        passing = list(fn.get("passed", [])) + passing
        if coverage is not None and passing and fn.get("coverage", True):
            channel = _Channel()
            pid = _in_child(_coverage_work(fn["prefix"], passing, fn["entrypoint"], coverage,
                                           template),
                            results_fd, channel, scratch, runs)
            runs += 1
            code, timed_out = _wait(pid, fn["coverage_timeout"])
            channel.read(200)
            report = _read_report(os.path.join(scratch, f"run{runs - 1}", "report.json"))
            _kill_descendants()
            _wipe(scratch, keep)
            if job.get("own_namespaces"):
                _remove_ipc(libc)
            try:
                record = json.loads(report) if code == 0 and not timed_out else None
            except ValueError:
                record = None
            if record is None:
                record = {"error": "timeout" if timed_out else f"exit {code}"}
            emit({"f": fi, "coverage": record})
    emit({"done": True})
