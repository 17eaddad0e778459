"""R (`r`): tests are `stopifnot(isTRUE(all.equal(a, b)))`."""

from __future__ import annotations

import os
import shutil
import subprocess

from multiplt.languages.base import (ASSERTION_ERROR, EXCEPTION, OK, SYNTAX_ERROR, Language,
                                     Param, contains)
from multiplt.languages.types import PyType, member_for

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}
# R's atomic vector kinds: elements of one kind go in c(...), anything else in list(...)
_ATOMIC = {"int": "numeric", "float": "numeric", "bool": "logical", "str": "character"}


def r_string(text: str) -> str:
    return '"' + "".join(_ESCAPES.get(c, c) for c in text) + '"'


def _atomic_kind(value, t: PyType) -> str | None:
    """The R vector kind `value` is written as (None: not atomic). An Optional slot holding a
    value is that value's kind, as in MultiPL-E: `(-2, 1)` of `Tuple[Optional[int], ...]` is
    `c(-2, 1)`; only an actual NULL makes the container a list."""
    t = member_for(value, t)
    if t.kind == "optional":
        t = member_for(value, t.args[0]) if value is not None else t
    return _ATOMIC.get(t.kind)


class RLanguage(Language):
    code = "r"
    name = "r"
    file_ext = "r"
    stop_tokens = ("\n#", "\n```")
    timeout = 5.0
    binaries = ("Rscript",)
    terms = {"array": "vector", "list": "list", "tuple": "list", "dictionary": "named list",
             "None": "NULL", "True": "TRUE", "False": "FALSE"}
    keywords = frozenset("if else repeat while function for next break TRUE FALSE NULL Inf NaN NA "
                         "NA_integer_ NA_real_ NA_character_ in".split())

    def identifier(self, name: str) -> str:
        name = super().identifier(name)
        return "X" + name if name.startswith("_") else name  # R names cannot start with `_`

    # ---- writing problems ----------------------------------------------------------------------
    def render_value(self, value, t: PyType) -> str:
        if value is None:
            return "NULL"
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        if t.kind == "float":
            return repr(float(value))
        if isinstance(value, (int, float)):
            return repr(value)
        if isinstance(value, str):
            return r_string(value)
        if isinstance(value, (list, tuple)):
            elems = list(t.args) if t.kind == "tuple" else [t.args[0]] * len(value)
            items = [self.value(v, e) for v, e in zip(value, elems)]
            if not value:
                return "c()"  # as in MultiPL-E: NULL
            kinds = {_atomic_kind(v, e) for v, e in zip(value, elems)}
            atomic = len(kinds) == 1 and None not in kinds
            return ("c(" if atomic else "list(") + ", ".join(items) + ")"
        if isinstance(value, dict):
            kt, vt = t.args
            # Names are strings; a quoted name also works for numeric keys (MultiPL-E wrote
            # `list(1 = ...)`, a syntax error).
            pairs = [f"{r_string(str(k))} = {self.value(v, vt)}" for k, v in value.items()]
            return "list(" + ", ".join(pairs) + ")"
        raise TypeError(f"cannot render {value!r}")

    def render_prompt(self, name: str, params: list[Param], returns: PyType, description: str) -> str:
        comment = "".join(f"# {line}".rstrip() + "\n" for line in description.split("\n"))
        args = ", ".join(self.identifier(p.name) for p in params)
        return f"{comment}{self.identifier(name)} <- function({args}) {{"

    def render_assert(self, call: str, expected: str, tolerance: float | None) -> str:
        if tolerance is not None:
            return f"    stopifnot(isTRUE(abs({call} - {expected}) < {tolerance!r}))"
        return f"    stopifnot(isTRUE(all.equal({call}, {expected})))"

    def render_test_file(self, name: str, asserts: list[str]) -> str:
        body = "\n".join(asserts)
        return (f"test_humaneval <- function() {{\ncandidate <- {self.identifier(name)}\n{body}\n}}\n"
                "test_humaneval()")

    def return_body(self, expr: str) -> str:
        return f"\n  return({expr})\n}}\n"

    def command(self, path: str) -> list[str]:
        return ["Rscript", "--vanilla", path]

    def fork_server(self, folder: str, library: str) -> list[str] | None:
        """R as `Rscript --vanilla` starts it (`R --no-echo --no-restore --vanilla --file=F`,
        default packages attached; about 0.17 s of CPU per fresh start), reading a script whose
        last line forks. R reads its --file as its console, a line at a time, so in a program
        the descriptor of that script is switched to the program file (multiplt_serve_console_ptr)
        and R's own read-eval loop runs the program as it runs any file: same parse errors
        (met when reached), same `Error ... Execution halted`, same exit status."""
        rscript = shutil.which("Rscript")
        if not rscript:
            return None
        home = subprocess.run([rscript, "--vanilla", "-e", 'cat(R.home("bin"))'],
                              capture_output=True, text=True, timeout=60, check=True).stdout
        r_bin = os.path.join(home.strip(), "R")
        if not os.access(r_bin, os.X_OK):
            return None
        path = os.path.abspath(os.path.join(folder, "server.R"))
        with open(path, "w", encoding="utf-8") as f:
            f.write(_SERVER.format(library=r_string(library), script=r_string(path)))
        os.chmod(path, 0o644)
        return [r_bin, "--no-echo", "--no-restore", "--vanilla", f"--file={path}"]

    def classify(self, exit_code: int, stdout: str, stderr: str) -> str:
        if exit_code == 0:
            return OK
        if contains(stderr, r"^Error: unexpected", r"^Error in parse\(", r"unexpected end of input",
                    r"unexpected (symbol|string constant|numeric constant|'[^']*'|input)"):
            return SYNTAX_ERROR
        if contains(stderr, r"is not TRUE", r"are not all TRUE"):
            return ASSERTION_ERROR
        return EXCEPTION


# The pre-loaded runtime (fork_server). Base R's functions are lazy-loaded (a promise per name,
# read and unserialized from base.rdb when first used, again in every program): the first line
# forces them all once (measured: a reference program's own CPU time from about 32 to 20 ms);
# it loads no namespace. Both statements on the last line: after it, R reads the program as the
# rest of its console input. In the program, the session's temp folder (made at
# start-up in the server's /tmp) is made again in the program's fresh /tmp.
_SERVER = """invisible(lapply("base", function(ns) {{ e <- asNamespace(ns); for (n in ls(e, all.names = TRUE)) get(n, envir = e) }}))
invisible(dyn.load({library}))
if (.C("multiplt_serve_console_ptr", 3L, {script}, result = 0L)$result == 0L) invisible(tempdir(check = TRUE)) else quit(save = "no", status = 1)
"""
