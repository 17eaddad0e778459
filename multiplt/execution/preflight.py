"""Before a batch: prove each language's runtime and test library work, inside the sandbox.

Each language runs one known-good program (must end OK with exit code 0) and one known-bad one
(a wrong answer: must end AssertionError), written in the same test style as the benchmarks
(rackunit, luaunit, stopifnot, assert, @test). A missing interpreter, a missing test library or a
runtime that misbehaves under the sandbox's limits aborts the batch with a PlatformError instead
of silently scoring every completion as the model's failure.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading

from multiplt.errors import PlatformError
from multiplt.execution.retry import run_with_retries
from multiplt.execution.sandbox import SANDBOX_PATH, Sandbox
from multiplt.languages.base import ASSERTION_ERROR, OK, TIMEOUT, Language

LOG = logging.getLogger("multiplt.execution")

# One program per language; {body} is the answer: GOOD_BODY passes the test, BAD_BODY fails it.
PROGRAMS = {
    "py": ("def add(x: int, y: int) -> int:\n    return {body}\n\n"
           "def check(candidate):\n    assert candidate(2, 3) == 5\n\ncheck(add)\n"),
    "rkt": ("#lang racket\n\n(define (add x y)\n  {body})\n\n(require rackunit)\n\n"
            "(define (test-humaneval) \n  (let (( candidate add))\n"
            "    (check-within (candidate 2 3) 5 0.001)\n))\n\n(test-humaneval)\n"),
    "jl": ("function add(x::Int64, y::Int64)::Int64 \n    return {body}\nend\n\n"
           "using Test\n\n@testset begin\n\ncandidate = add;\n\t@test(candidate(2, 3) == 5)\nend\n"),
    "r": ("add <- function(x, y) {{\n  {body}\n}}\n"
          "test_humaneval <- function() {{\ncandidate <- add\n"
          "    stopifnot(isTRUE(all.equal(candidate(2, 3), 5)))\n}}\ntest_humaneval()\n"),
    "ml": ("let add (x : int) (y : int) : int =\n  {body}\n\n"
           "let assertions =\n let candidate = add in\n  (assert ((candidate 2 3) = 5));\n  ()\n"),
    "lua": ("local function add(x, y)\n    return {body}\nend\n\nlu = require('luaunit')\n\n"
            "function test_humaneval()\nlocal candidate = add\n"
            "    lu.assertEquals(candidate(2, 3), 5)\nend\n\nos.exit(lu.LuaUnit.run())\n"),
}
GOOD_BODY = {"py": "x + y", "rkt": "(+ x y)", "jl": "x + y", "r": "x + y", "ml": "x + y",
             "lua": "x + y"}
BAD_BODY = {"py": "x - y", "rkt": "(- x y)", "jl": "x - y", "r": "x - y", "ml": "x - y",
            "lua": "x - y"}

_lock = threading.Lock()


def known_program(lang: Language, good: bool) -> str:
    body = (GOOD_BODY if good else BAD_BODY)[lang.code]
    return PROGRAMS[lang.code].format(body=body)


def missing_binaries(lang: Language, unsafe: bool = False) -> list[str]:
    """The language's programs that are not on the PATH the sandbox uses."""
    path = os.environ.get("PATH", SANDBOX_PATH) if unsafe else SANDBOX_PATH
    return [b for b in lang.binaries if shutil.which(b, path=path) is None]


def preflight(sandbox: Sandbox, langs: list[Language], timeout: float | None = None) -> None:
    """Raise PlatformError unless every language in `langs` runs its known programs correctly."""
    sandbox.check()
    for lang in langs:
        sandbox.prepare(lang)
        with _lock:
            if lang.code in sandbox.preflight_passed:
                continue
        _check_language(sandbox, lang, timeout)
        with _lock:
            sandbox.preflight_passed.add(lang.code)
        LOG.info("preflight %s: ok", lang.code)


def _check_language(sandbox: Sandbox, lang: Language, timeout: float | None) -> None:
    if lang.code not in PROGRAMS:
        raise PlatformError(f"no preflight programs for language {lang.code!r}")
    missing = missing_binaries(lang, sandbox.unsafe)
    if missing:
        raise PlatformError(
            f"{lang.name} ({lang.code}) cannot run: {', '.join(missing)} not installed (not on "
            f"PATH {SANDBOX_PATH if not sandbox.unsafe else os.environ.get('PATH')}); "
            "scripts/setup.sh lists the packages, the sandbox image in docker/ has them all")
    # Start-up is slower on a loaded machine: allow twice the language's limit.
    limit = max(timeout or 0.0, lang.timeout) * 2
    for good, want in ((True, OK), (False, ASSERTION_ERROR)):
        program = known_program(lang, good)
        for attempt in range(2):
            result = run_with_retries(sandbox, lang, program, limit)
            status = TIMEOUT if result.timed_out else lang.classify(
                result.exit_code, result.stdout, result.stderr)
            if status != TIMEOUT:
                break
        ok = status == want and (result.exit_code == 0 or not good)
        if not ok:
            kind = "known-good" if good else "known-bad"
            detail = (result.stderr or result.stdout).strip()[-800:] or "(no output)"
            raise PlatformError(
                f"preflight for {lang.name} ({lang.code}) failed: its {kind} program ended "
                f"{status} with exit code {result.exit_code}, expected {want}. The runtime or its "
                f"test library is missing or misbehaves. Output: {detail}")
