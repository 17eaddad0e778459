"""Before a batch: prove each language's runtime and test library work, inside the sandbox.

Each language runs one known-good program (must end OK with exit code 0) and one known-bad one
(a wrong answer: must end AssertionError), written by the language's own rendering, exactly as
the benchmarks are (rackunit, luaunit, stopifnot, assert, @test): nothing here is per language. A missing interpreter, a missing test library or a
runtime that misbehaves under the sandbox's limits aborts the batch with a PlatformError instead
of silently scoring every completion as the model's failure. Commands that run programs only
after sampling (testgen, translate) run the same preflight before it (`check_ready`).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading

from multiplt.errors import MissingSetup, MultipltError, PlatformError
from multiplt.execution.retry import run_with_retries
from multiplt.execution.sandbox import SANDBOX_PATH, Sandbox
from multiplt.languages.base import ASSERTION_ERROR, OK, TIMEOUT, Language, Param, TestCase
from multiplt.languages.types import INT

LOG = logging.getLogger("multiplt.execution")

# The known problem, written by each language itself: add(2, 3) must be 5. The known-good
# body returns 5, the known-bad one 6 (well typed, so it fails only at the test).
_NAME, _PARAMS, _CASE = "add", [Param("x", INT), Param("y", INT)], TestCase((2, 3), 5)

_lock = threading.Lock()


def known_problem(lang: Language) -> tuple[str, str]:
    """(prompt, tests) of the known problem, in `lang`'s own rendering, as the benchmarks are."""
    prompt = lang.render_prompt(_NAME, _PARAMS, INT, "Add two numbers.")
    tests = lang.render_test_file(_NAME, [lang.render_case("candidate", _PARAMS, INT, _CASE)])
    return prompt, tests


def known_program(lang: Language, good: bool) -> str:
    """prompt + completion + "\n" + tests of the known problem: right (5) or wrong (6)."""
    prompt, tests = known_problem(lang)
    return prompt + lang.return_body(lang.value(5 if good else 6, INT)) + "\n" + tests


#: where a missing runtime comes from, for the errors that name one
INSTALL_HINT = "scripts/setup.sh lists the packages, the sandbox image in docker/ has them all"


def runtime_path(unsafe: bool = False) -> str:
    """The PATH programs run with: the sandbox's, or the host's without a sandbox."""
    return os.environ.get("PATH", SANDBOX_PATH) if unsafe else SANDBOX_PATH


def missing_binaries(lang: Language, unsafe: bool = False) -> list[str]:
    """The language's programs that are not on the PATH programs run with (runtime_path)."""
    return [b for b in lang.binaries if shutil.which(b, path=runtime_path(unsafe)) is None]


def check_runtimes(langs: list[Language], unsafe: bool = False, what: str = "the programs") -> None:
    """For a command that samples before it executes (evaluate, translate): every language of
    `langs` whose runtime is not installed (not on the PATH programs run with, runtime_path) is
    refused at once, all of them named in one line (MultipltError, exit 2: no retry mends it),
    rather than after the other languages' GPU time; then check_ready runs the preflight (a
    sandbox that cannot start, a missing test library, a misbehaving runtime). `what`: whose
    programs they are, for the message (`the translations`)."""
    lacking = []
    for lang in langs:
        missing = missing_binaries(lang, unsafe)
        if missing:
            lacking.append(f"{lang.name} ({lang.code}: {', '.join(missing)} not installed)")
    if lacking:
        raise MultipltError(f"--lang: {what} of {', '.join(lacking)} cannot run (not on PATH "
                            f"{runtime_path(unsafe)}); install the runtime ({INSTALL_HINT}) or "
                            f"leave the language out of --lang")
    check_ready(langs, unsafe)


def check_ready(langs: list[Language], unsafe: bool = False) -> None:
    """For a command that runs programs only after sampling: the preflight now, in a sandbox of
    its own (one bubblewrap per program, the runner the executor falls back to), so that a
    sandbox that cannot start (bwrap, setpriv or prlimit missing or unusable) or a language of
    `langs` whose runtime or test library is missing stops the command before any sampling.
    `unsafe`: no sandbox (--unsafe-no-sandbox), the languages are still run. A missing program,
    package or test library (MissingSetup) is MultipltError (exit 2: a setup problem, which no
    retry mends), on one line: the preflight's message and INSTALL_HINT. What may pass on a
    retry (a known program that timed out twice on a loaded machine, a sandbox that could not
    start) stays PlatformError (exit 3), as in execute."""
    with Sandbox(unsafe_no_sandbox=unsafe, warm=False, preload=False) as sandbox:
        try:
            preflight(sandbox, langs)
        except MissingSetup as exc:
            message = " ".join(str(exc).split())
            if not message.endswith(INSTALL_HINT):
                message = f"{message}; {INSTALL_HINT}"
            raise MultipltError(message) from None


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
    missing = missing_binaries(lang, sandbox.unsafe)
    if missing:
        raise MissingSetup(
            f"{lang.name} ({lang.code}) cannot run: {', '.join(missing)} not installed (not on "
            f"PATH {runtime_path(sandbox.unsafe)}); {INSTALL_HINT}")
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
            library = f" ({lang.test_library})" if lang.test_library else ""
            detail = (result.stderr or result.stdout).strip()[-800:] or "(no output)"
            # a wrong status is a missing runtime or test library; two timeouts may be load
            error = PlatformError if status == TIMEOUT else MissingSetup
            raise error(
                f"preflight for {lang.name} ({lang.code}) failed: its {kind} program ended "
                f"{status} with exit code {result.exit_code}, expected {want}. The runtime or its "
                f"test library{library} is missing or misbehaves. Output: {detail}")
