"""Telling the platform's failures from the program's, and retrying the platform's.

bubblewrap reports its own failures (no namespace left, out of memory while mounting, ...) as
"bwrap: ..." on stderr with exit code 1 before the program starts. Those runs are retried with a
backoff and never scored. A program could print the same text; if every try looks like that and
a fresh probe shows the sandbox working, the output is the program's and is scored as such.
A closed sandbox (the run is stopping) is never retried: SandboxClosed goes straight up, and a
wait between tries ends as soon as the sandbox closes.
"""

from __future__ import annotations

import logging

from multiplt.errors import PlatformError
from multiplt.execution.process import Finished
from multiplt.execution.sandbox import Sandbox, SandboxClosed
from multiplt.languages.base import Language

LOG = logging.getLogger("multiplt.execution")
RETRIES = 3
BACKOFF_S = 0.5  # first wait before retrying a platform failure; doubles each time


def is_platform_failure(result: Finished) -> bool:
    return result.exit_code == 1 and not result.stdout and result.stderr.startswith("bwrap: ")


def run_with_retries(sandbox: Sandbox, lang: Language, program: str, timeout: float) -> Finished:
    finished, last_error = None, None
    for attempt in range(RETRIES):
        try:
            finished = sandbox.run(lang, program, timeout)
        except SandboxClosed:
            raise
        except PlatformError as exc:
            finished, last_error = None, exc
        else:
            if sandbox.unsafe or not is_platform_failure(finished):
                return finished
            LOG.warning("sandbox failed to start (try %d of %d): %s", attempt + 1, RETRIES,
                        finished.stderr.strip()[:300])
        if attempt + 1 < RETRIES and sandbox.wait_closed(BACKOFF_S * 2 ** attempt):
            raise SandboxClosed()
    if finished is None:
        raise PlatformError(f"could not start a program after {RETRIES} tries: {last_error}")
    sandbox.probe()  # raises PlatformError when the sandbox itself is broken
    return finished
