"""Sandbox side of testgen, part 2 of 3: what a child runs (standard library only).

An assert's program run as `python3 file.py` would run it; the coverage-and-types run of a
function's passing asserts; the types of values as JSON trees. Joined with runner_process.py
and runner.py into one program (see runner.py).
"""

import json
import os
import shutil
import sys
import traceback
import types

PROGRAM = "program.py"
_MAX_SIGNATURES = 64
_MAX_ITEMS = 64


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


# the statuses only the runner gives (from the exit status and its clock), never a child's report
_RUNNER_STATUSES = ("OK", "Timeout", "KilledRunner")


def _status(report: str, code: int) -> str:
    """A failed child's status: the exception name it reported (the child's own word, used
    for counts only: the verdict is its exit status), else `exit N`. A name the runner itself
    gives (`OK`, `Timeout`, `KilledRunner`) is never taken from a child that exited non-zero."""
    import re

    lines = report.strip().splitlines()
    if not lines:
        return f"exit {code}"
    name = lines[-1].strip()
    if name in _RUNNER_STATUSES:
        return f"exit {code}"
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
