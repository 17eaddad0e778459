"""R's fork server removes the session's temp folder in-process at exit instead of by
`sh -c 'rm -Rf DIR'` (multiplt/languages/r.py, _GLUE): whatever a program does to that folder,
to PATH or to `rm`, its output and exit code are a fresh `Rscript`'s."""

from __future__ import annotations

import re

import pytest

from multiplt import languages
from multiplt.execution.sandbox import Sandbox
from tests.unit.execution.helpers import language_params

#: R names its session's temp folder at random
_TEMP = re.compile(r"/tmp/Rtmp\w+")

PROGRAMS = {
    "plain": 'writeLines("x", file.path(tempdir(), "f")); cat("ok\\n")',
    # rm fails on an entry it cannot remove and says so on stderr
    "unremovable": 'd <- file.path(tempdir(), "d"); dir.create(d); writeLines("x", file.path(d, "f"))\n'
                   'Sys.chmod(d, "500"); cat("ok\\n")',
    "no rm on PATH": 'Sys.setenv(PATH = "/nonexistent"); cat("ok\\n")',
    "PATH unset": 'Sys.unsetenv("PATH"); cat("ok\\n")',
    "own rm first on PATH": 'writeLines("#!/bin/sh\\necho my rm \\"$@\\"", "/tmp/rm"); Sys.chmod("/tmp/rm", "755")\n'
                            'Sys.setenv(PATH = paste0("/tmp:", Sys.getenv("PATH")))',
    "folder already gone": 'unlink(tempdir(), recursive = TRUE); cat("ok\\n")',
    # the program's own system() calls, the same command included, start their shells as usual
    "same command by the program": 'a <- system("echo $$", intern = TRUE); system(paste("rm -Rf", tempdir()))\n'
                                   'b <- system("echo $$", intern = TRUE); cat(as.integer(b) - as.integer(a), "\\n")',
    "error exit": 'writeLines("x", file.path(tempdir(), "f")); stop("boom")',
    "quit with status": 'writeLines("x", file.path(tempdir(), "f")); quit(status = 3)',
}


@pytest.mark.parametrize("code", language_params(["r"]))
def test_temp_folder_removal_as_a_fresh_r(code):
    lang = languages.get(code)
    with Sandbox(warm=True) as forked, Sandbox(warm=True, preload=False) as fresh:
        for label, program in PROGRAMS.items():
            a = forked.run(lang, program, lang.timeout)
            b = fresh.run(lang, program, lang.timeout)
            assert a.sandbox_info.get("forked") and not b.sandbox_info.get("forked")
            assert (a.exit_code, _TEMP.sub("TMP", a.stdout), _TEMP.sub("TMP", a.stderr)) == \
                (b.exit_code, _TEMP.sub("TMP", b.stdout), _TEMP.sub("TMP", b.stderr)), label
