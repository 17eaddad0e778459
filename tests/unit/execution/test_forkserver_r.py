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


#: programs that change values they got from base R: what they print must be a fresh R's, with
#: every object of the server marked not mutable (multiplt_r_freeze in r.py's glue)
VALUE_PROGRAMS = {
    "global environment": 'print(ls(all.names = TRUE))',
    "copy of a base vector": 'x <- letters; x[1] <- "z"; cat(x[1:3], letters[1:3], "\\n")',
    "vector from get": 'v <- get("month.abb"); v[] <- "x"; cat(month.abb[1], v[1], "\\n")',
    "list from base": 'm <- .Machine; m$integer.max <- 0L; cat(.Machine$integer.max, m$integer.max, "\\n")',
    "body of a base function": 'f <- stopifnot; body(f) <- quote(NULL); cat(is.null(body(f)), is.null(body(stopifnot)), "\\n")',
    "formals of a base function": 'g <- paste; formals(g)$sep <- "-"; cat(paste("a", "b"), g("a", "b"), "\\n")',
    "string from base": 's <- month.name[1]; substr(s, 1, 1) <- "j"; cat(s, month.name[1], "\\n")',
    "masking a base value": 'pi <- 3; cat(pi, base::pi, "\\n")',
    "attributes": 'x <- state.abb; names(x) <- state.name; attr(x, "a") <- 1; cat(names(state.abb), names(x)[1], "\\n")',
    "in place in a function": 'f <- function(v) { v[2] <- 0; v }; w <- c(1, 2); cat(f(w), w, f(LETTERS)[1:2], "\\n")',
    "environment of a base function": 'e <- environment(sd); cat(environmentName(e), isNamespace(e), "\\n")',
    # the harness's name bound actively: the task callback that marks the harness never reads it
    "harness name active": 'n <- 0\nmakeActiveBinding("test_humaneval", function() { n <<- n + 1; NULL }, globalenv())\n'
                           'x <- 1\ny <- 2\ncat("n =", n, "\\n")',
    "harness name active, failing": 'makeActiveBinding("test_humaneval", function() stop("boom"), globalenv())\n'
                                    'x <- 1\ncat("ok\\n")',
}


@pytest.mark.parametrize("code", language_params(["r"]))
def test_server_objects_are_not_mutable_and_values_behave_as_in_a_fresh_r(code):
    lang = languages.get(code)
    with Sandbox(warm=True) as forked, Sandbox(warm=True, preload=False) as fresh:
        marked = forked.run(lang, '.Internal(inspect(as.name("stopifnot"))); .Internal(inspect(letters))',
                            lang.timeout)
        assert marked.sandbox_info.get("forked") and marked.exit_code == 0, marked.stderr
        # a fresh R counts references to these (REF(7), REF(1)); the server froze them at the maximum
        assert len(re.findall(r"\bREF\(65535\)", marked.stdout)) >= 2, marked.stdout[:500]
        for label, program in VALUE_PROGRAMS.items():
            a = forked.run(lang, program, lang.timeout)
            b = fresh.run(lang, program, lang.timeout)
            assert (a.exit_code, a.stdout, a.stderr) == (b.exit_code, b.stdout, b.stderr), label


@pytest.mark.parametrize("code", language_params(["r"]))
def test_server_heap_top_ends_at_a_huge_page_boundary_at_the_fork(code):
    lang = languages.get(code)
    with Sandbox(warm=True) as forked:
        got = forked.run(lang, 'cat(.C("multiplt_r_heap_top", offset = 0L)$offset)', lang.timeout)
    assert got.sandbox_info.get("forked") and got.exit_code == 0, got.stderr
    if int(got.stdout) == -1:
        pytest.skip("this C library has no mallinfo2 (glibc 2.33 or later): the heap is not aligned")
    # at the fork, the top chunk's header ended at the boundary: new memory starts on fresh pages
    assert int(got.stdout) == 0, got.stdout


# A harness large enough that R's JIT compiles it before its first call (a fresh Rscript does).
_BIG_HARNESS = ("f <- function(x) x + 1\ntest_humaneval <- function() {\ncandidate <- f\n"
                + "".join(f"    stopifnot(isTRUE(all.equal(candidate({i}), {i + 1})))\n" for i in range(12))
                + "}\ntest_humaneval()\n"
                "cat(typeof(.Internal(bodyCode(test_humaneval))), typeof(.Internal(bodyCode(f))), "
                "length(getTaskCallbackNames()), \"\\n\")\n")


@pytest.mark.parametrize("code", language_params(["r"]))
def test_harness_runs_uncompiled_and_the_candidate_compiled(code):
    """In a forked program the test harness function is not byte-compiled (a fresh Rscript
    compiles it before its one call); the candidate is compiled as in a fresh Rscript, and the
    task callback that marks the harness is gone once it has."""
    lang = languages.get(code)
    assert languages.get(code).render_test_file("f", ["    stopifnot(TRUE)"]).startswith(
        "test_humaneval <- function() {")
    with Sandbox(warm=True) as forked, Sandbox(warm=True, preload=False) as fresh:
        a = forked.run(lang, _BIG_HARNESS, lang.timeout)
        b = fresh.run(lang, _BIG_HARNESS, lang.timeout)
    assert a.sandbox_info.get("forked") and (a.exit_code, a.stderr) == (b.exit_code, b.stderr) == (0, "")
    assert b.stdout == "bytecode bytecode 0 \n"
    assert a.stdout == "language bytecode 0 \n"
