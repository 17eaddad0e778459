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


def _fresh_main(path: str, seed: str):
    """A fresh `__main__` module for the program at `path`, with `random` seeded from `seed` (a
    string: seeded through SHA-512, so the same whatever the hash seed), never from the OS: the
    same assert draws the same numbers on every run and under both hash seeds."""
    module = types.ModuleType("__main__")
    module.__file__ = path
    module.__builtins__ = __builtins__
    sys.modules["__main__"] = module
    sys.argv = [path]
    if "random" in sys.modules:
        sys.modules["random"].seed(seed)
    return module


def _seed(key: str, texts: list) -> str:
    """The `random` seed of a run of `texts` (an assert; a coverage run's passing asserts) of the
    function `key` (its sha1)."""
    return key + "\n" + "\n".join(texts)


def _run_program(text: str, path: str, report, done: str = "", seed: str = "") -> int:
    """Run `text` as `python3 path` would (here, in the forked child); 0 when it ran to its end.
    A SystemExit raised while it runs (`exit()`, `sys.exit(0)` included) is a failure, reported
    as such: the program did not finish. Only after it finished is `done` (the runner's token
    for this run) reported, so an exit that skips the rest (`os._exit(0)`) reports no token and
    fails too (runner.main passes a run only with exit status 0 and that token)."""
    module = _fresh_main(path, seed)
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
    except SystemExit:
        report("SystemExit")
        return 1
    except BaseException as exc:  # noqa: BLE001 (the program's own failure)
        report(type(exc).__name__)
        traceback.print_exc()
        return 1
    try:
        sys.stdout.flush()
    except Exception:  # noqa: BLE001
        return 120
    report(done)
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


def _assert_work(program: str, done: str = "", seed: str = ""):
    def work(channel, folder):
        return _run_program(program, os.path.join(folder, PROGRAM), channel.child_report, done,
                            seed)
    return work


def _new_coverage(coverage, include: list):
    """A Coverage of statements (no branches) of the `include` paths, with an empty exclude
    list: coverage.py's default one drops lines marked `# pragma: no cover` (and `...` bodies,
    `if TYPE_CHECKING:` blocks), which a corpus function's own text could use to hide statements
    no test ran; every statement of the body counts."""
    cov = coverage.Coverage(data_file=None, include=include, branch=False, config_file=False)
    cov.clear_exclude()
    return cov


def _coverage_work(prefix: str, passing: list, entry: str, coverage, template=None,
                   seed: str = ""):
    """The coverage-and-types run of `passing` after `prefix`, writing `report.json`. What the
    asserts change in the builtins (a replaced `len`) is put back before the report is made; a
    failure of the run itself (in `prefix`, or while reporting) is reported on the channel as
    `Name: message`, the cause runner.main names in the function's coverage error."""
    import builtins

    def work(channel, folder):
        saved = dict(vars(builtins))
        try:
            return _measure(prefix, passing, entry, coverage, template, folder, saved, seed)
        except BaseException as exc:  # noqa: BLE001 (the cause, for the coverage error)
            _restore_builtins(builtins, saved)
            try:
                cause = f"{type(exc).__name__}: {exc}"
            except BaseException:  # noqa: BLE001 (a str() that fails)
                cause = type(exc).__name__
            channel.child_report(" ".join(cause.split())[:160])
            return 70
    return work


def _restore_builtins(builtins, saved: dict) -> None:
    names = vars(builtins)
    for name in [n for n in names if n not in saved]:
        del names[name]
    names.update(saved)


def _measure(prefix, passing, entry, coverage, template, folder, saved, seed="") -> int:
    import builtins

    path = os.path.join(folder, PROGRAM)
    with open(path, "w", encoding="utf-8") as f:
        f.write(prefix)
    module = _fresh_main(path, seed)
    signatures: list = []
    errors = 0
    cov = template or _new_coverage(coverage, [path])
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
        _restore_builtins(builtins, saved)
    _file, statements, _excluded, missing, _text = cov.analysis2(path)
    with open(os.path.join(folder, "report.json"), "w") as f:
        json.dump({"statements": statements, "missing": missing, "signatures": signatures,
                   "errors": errors}, f)
    return 0


def _merge_reports(reports: list, failed: int) -> dict:
    """One record from the coverage runs of single asserts (runner.main's fallback): a statement
    ran if it ran in any run, signatures joined; `errors` counts the asserts whose run failed
    (`failed`) and those that failed in theirs. None when no report is well formed."""
    statements, missing, signatures, errors, good = set(), None, [], failed, 0
    for report in reports:
        try:
            record = json.loads(report)
            lines = [int(x) for x in record["statements"]]
            gaps = {int(x) for x in record["missing"]}
            sigs = list(record.get("signatures", []))
            errs = int(record.get("errors", 0))
        except Exception:  # noqa: BLE001 (a malformed or forged report: that run failed)
            errors += 1
            continue
        good += 1
        statements.update(lines)
        missing = gaps if missing is None else missing & gaps
        errors += errs
        for sig in sigs:
            if sig not in signatures and len(signatures) < _MAX_SIGNATURES:
                signatures.append(sig)
    if not good:
        return None
    return {"statements": sorted(statements), "missing": sorted(missing & statements),
            "signatures": signatures, "errors": errors}


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
    cov = _new_coverage(coverage, [path])
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
    cov = _new_coverage(coverage, [os.path.join(scratch, "run*", PROGRAM)])
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
