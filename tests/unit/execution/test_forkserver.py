"""Issue 18: programs fork from pre-loaded runtimes in the warm sandbox, with the isolation of a
fresh interpreter and its verdicts."""

from __future__ import annotations

import os

import pytest

from multiplt import languages
from multiplt.execution.preflight import known_program
from multiplt.execution.sandbox import NOBODY, Sandbox
from multiplt.languages import registry
from multiplt.languages.base import Language
from tests.unit.execution.forkserver_programs import CORRUPT, MARKS, SHOW, stable
from tests.unit.execution.helpers import installed, language_params
from tests.unit.execution.status_programs import PROGRAMS as STATUS_PROGRAMS

#: languages whose module declares a pre-loaded runtime
FORKING = [code for code in registry.names()
           if type(registry.get(code)).fork_server is not Language.fork_server]


def test_every_forking_language_has_corruption_programs():
    assert FORKING, "no language forks from a pre-loaded runtime"
    assert set(FORKING) <= set(CORRUPT) and set(FORKING) <= set(SHOW)


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(warm=True) as sb:
        for code in FORKING:
            if installed(code):
                sb.prepare(languages.get(code))
        yield sb


def _run(sandbox, code, program):
    lang = languages.get(code)
    finished = sandbox.run(lang, program, lang.timeout)
    assert finished.sandbox_info.get("forked"), f"{code}: not forked from the pre-loaded runtime"
    return finished


@pytest.mark.parametrize("code", language_params(FORKING))
def test_a_program_cannot_corrupt_the_next(sandbox, code):
    """Environment, current directory, library state, /tmp and a left thread of one program are
    not seen by the next program forked from the same runtime in the same warm sandbox."""
    before = _run(sandbox, code, SHOW[code])
    corrupt = _run(sandbox, code, CORRUPT[code])
    after = _run(sandbox, code, SHOW[code])
    # the corruption took, in the corrupting program itself
    for mark in ("corrupted", "HIJACKED"):
        assert mark in corrupt.stdout + corrupt.stderr, (mark, corrupt.stdout, corrupt.stderr)
    # ... and nothing of it reached the next one, which ran in the same warm sandbox
    assert (after.exit_code, after.stdout, after.stderr) == \
        (before.exit_code, before.stdout, before.stderr)
    assert not any(m in after.stdout + after.stderr for m in MARKS)
    assert after.sandbox_info["sandbox-pid-namespace"] == corrupt.sandbox_info["sandbox-pid-namespace"]


@pytest.mark.parametrize("code", language_params(FORKING))
def test_forked_programs_have_no_capabilities_and_own_namespaces(sandbox, code):
    lang = languages.get(code)
    from tests.unit.execution.hostile_programs import INSPECT
    finished = _run(sandbox, code, INSPECT[code])
    assert finished.exit_code == 0, finished.stderr
    status = dict(line.split(":", 1) for line in finished.stdout.splitlines() if ":\t" in line)
    assert status["Uid"].split() == [str(NOBODY)] * 4
    assert status["Pid"].strip() == "2"  # pid 1 is its init, in a PID namespace of its own
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[cap], 16) == 0, (cap, status[cap])
    assert status["NoNewPrivs"].strip() == "1"
    assert lang.code == code


@pytest.mark.parametrize("code", language_params(FORKING))
def test_same_verdicts_as_a_fresh_interpreter(sandbox, code):
    """Status, exit code, stdout and stderr byte for byte, forked or fresh, for the status
    programs of every status and the known-good and known-bad programs."""
    lang = languages.get(code)
    programs = [known_program(lang, True), known_program(lang, False), SHOW[code],
                *[p for status, cases in STATUS_PROGRAMS[code].items() if status != "Timeout"
                  for _, p in cases]]
    with Sandbox(warm=True, preload=False) as fresh:
        for program in programs:
            forked = _run(sandbox, code, program)
            plain = fresh.run(lang, program, lang.timeout)
            assert not plain.sandbox_info.get("forked")
            assert (forked.exit_code, forked.timed_out, stable(code, forked.stdout), forked.stderr) \
                == (plain.exit_code, plain.timed_out, stable(code, plain.stdout), plain.stderr), program


# Whether the running module imports the Racket server's template marker module: the one thing a
# program can see of the fork inside the expansion (written without its name, which a program
# must not mention to be continued that way).
_SEES_MARKER = """#lang racket
(define marker (string->symbol (string-append "multiplt" "-fork")))
(displayln (for/or ([imports (module->imports (variable-reference->resolved-module-path (#%variable-reference)))])
             (for/or ([mpi (cdr imports)])
               (equal? (resolved-module-path-name (module-path-index-resolve mpi)) marker))))
"""

# Not a plain `#lang racket` module, or naming the marker: loaded from scratch, as fresh.
_LOADED_FROM_SCRATCH = [
    "#lang racket/base\n(displayln (list 1 2))\n(car 1)\n",
    "(module program racket (displayln 2) (list 3))\n",
    "#lang racket\n(define multiplt-fork-point 5)\n(displayln multiplt-fork-point)\n(car 1)\n",
    "#lang racket\n(displayln 1))\n",
]


@pytest.mark.parametrize("code", language_params(["rkt"]))
def test_racket_programs_continue_the_servers_expansion(sandbox, code):
    """A forked `#lang racket` program continues the expansion the server started on its
    template (its module imports the marker module; a fresh racket's does not), and anything
    else is loaded from scratch with a fresh racket's output."""
    lang = languages.get(code)
    with Sandbox(warm=True, preload=False) as fresh:
        forked = _run(sandbox, code, _SEES_MARKER)
        plain = fresh.run(lang, _SEES_MARKER, lang.timeout)
        assert (forked.exit_code, forked.stdout, plain.exit_code, plain.stdout) == \
            (0, "#t\n", 0, "#f\n"), (forked.stderr, plain.stderr)
        for program in _LOADED_FROM_SCRATCH:
            a, b = _run(sandbox, code, program), fresh.run(lang, program, lang.timeout)
            assert (a.exit_code, a.stdout, a.stderr) == (b.exit_code, b.stdout, b.stderr), program


def _descendant_cmdlines(root: int) -> list[bytes]:
    """The command lines of `root`'s descendants (from each thread's /proc children list)."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        for task in os.listdir(f"/proc/{pid}/task") if os.path.isdir(f"/proc/{pid}/task") else []:
            try:
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
            except OSError:
                pass
        if pid != root:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    found.append(f.read())
            except OSError:
                pass
    return found


@pytest.mark.parametrize("code", language_params(FORKING))
def test_warm_up_starts_a_sandbox_and_its_runtime_before_any_program(code):
    """Sandbox.warm_up (the executor's, for every worker but the preflight's) leaves an idle
    sandbox whose pre-loaded runtime is already running; the next program runs in it."""
    lang = languages.get(code)
    with Sandbox(warm=True) as sb:
        sb.prepare(lang)
        before = list(sb.runner.all)
        sb.warm_up([lang])
        (warmed,) = [s for s in sb.runner.all if s not in before]
        assert warmed in sb.runner.idle
        server = sb._server(lang)
        assert any(server[-1].encode() in cmdline
                   for cmdline in _descendant_cmdlines(warmed.proc.pid)), "runtime not started"
        sb.runner.idle.remove(warmed)  # the next program must take the warmed one
        sb.runner.idle.append(warmed)
        for other in before:
            sb.runner.idle.remove(other)
        assert _run(sb, code, known_program(lang, True)).exit_code == 0
        assert sb.runner.all == [*before, warmed]


@pytest.mark.slow
@pytest.mark.parametrize("code", language_params(FORKING))
def test_reference_solutions_same_verdicts_forked_or_fresh(code, tmp_path):
    """Every reference solution and its wrong variant (tests/fixtures/solutions), on the
    benchmark we build: forked and fresh give the same exit code, stdout and stderr."""
    import concurrent.futures

    from tests.fixtures import solutions
    from tests.integration.test_reference_solutions import _build, _programs

    lang = languages.get(code)
    rows = _build(code, tmp_path / f"humaneval-{code}.jsonl", problems=list(solutions.load(code)))
    programs, _ = _programs(code, rows)
    assert len(programs) >= 40
    with Sandbox(warm=True) as forked, Sandbox(warm=True, preload=False) as fresh, \
            concurrent.futures.ThreadPoolExecutor(2) as pool:
        forked.prepare(lang)
        fresh.prepare(lang)
        runs = {label: (pool.submit(forked.run, lang, text, lang.timeout),
                        pool.submit(fresh.run, lang, text, lang.timeout))
                for label, text in programs.items()}
        differ = []
        for label, (a, b) in runs.items():
            a, b = a.result(), b.result()
            assert a.sandbox_info.get("forked") and not b.sandbox_info.get("forked")
            if (a.exit_code, a.timed_out, stable(code, a.stdout), a.stderr) != \
                    (b.exit_code, b.timed_out, stable(code, b.stdout), b.stderr):
                differ.append(f"{label}: forked {a.exit_code} {a.stderr[-300:]!r} / fresh "
                              f"{b.exit_code} {b.stderr[-300:]!r}")
    assert not differ, "\n".join(differ)


@pytest.mark.parametrize("code", language_params(["lua"]))
def test_without_lua_headers_a_fresh_interpreter(code, tmp_path, monkeypatch):
    """The Lua server's glue needs lua.h (liblua5.4-dev): without it, programs start a fresh
    lua5.4 (the batch goes on; the log says why)."""
    from multiplt.execution import forkserver
    from multiplt.languages import lua

    monkeypatch.setattr(lua, "LUA_INCLUDE", str(tmp_path / "no-headers"))
    if forkserver.library(str(tmp_path)) is None:
        pytest.skip("the fork servers' library cannot be built here")
    assert forkserver.build(languages.get(code), str(tmp_path)) is None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("server-")]
