"""OCaml (`ml`): run as a toplevel script; tests are `assert (a = b)`."""

from __future__ import annotations

import os
import shutil
import subprocess

from multiplt.languages.base import (ASSERTION_ERROR, EXCEPTION, OK, SYNTAX_ERROR, Language,
                                     Param, Unsupported, contains)
from multiplt.languages.types import PyType

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_SCALARS = {"int": "int", "float": "float", "bool": "bool", "str": "string"}


def ocaml_string(text: str) -> str:
    """An OCaml string literal (MultiPL-E did not escape; see docs/languages.md)."""
    out = []
    for c in text:
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif ord(c) < 32 or ord(c) == 127:
            out.append(f"\\{ord(c):03d}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def ocaml_float(value) -> str:
    text = repr(float(value))
    if text in ("inf", "-inf", "nan"):
        return {"inf": "infinity", "-inf": "neg_infinity", "nan": "nan"}[text]
    return f"({text})" if text.startswith("-") else text


def comment_text(text: str) -> str:
    """Text that is safe inside `(* ... *)`: OCaml lexes string literals and nested comments
    inside comments, so an odd `"` or a stray `*)` would break the program (MultiPL-E 68, 142)."""
    text = text.replace("*)", "* )").replace("(*", "( *")
    if text.count('"') % 2 or "\\" in text:
        text = text.replace('"', "'")
    return text


class OCamlLanguage(Language):
    code = "ml"
    name = "ocaml"
    file_ext = "ml"
    stop_tokens = ("\n\n", "\n(*", "\ntype", "\nlet")
    timeout = 15.0
    binaries = ("ocaml",)
    terms = {"array": "list", "list": "list", "tuple": "tuple", "dictionary": "association list",
             "None": "None", "True": "true", "False": "false"}
    strict_types = True
    option_constructor = True
    keywords = frozenset(
        "and as assert asr begin class constraint do done downto else end exception external false "
        "for fun function functor if in include inherit initializer land lazy let lor lsl lsr lxor "
        "match method mod module mutable new nonrec object of open or private rec sig struct then "
        "to true try type val virtual when while with".split())

    def identifier(self, name: str) -> str:
        # Capitalized names are constructors in OCaml (MultiPL-E 84, 91, 153): lower the first letter.
        name = name[:1].lower() + name[1:]
        return name + "_" if name in self.keywords else name

    # ---- writing problems ----------------------------------------------------------------------
    def render_type(self, t: PyType) -> str:
        if t.kind in _SCALARS:
            return _SCALARS[t.kind]
        if t.kind in ("list", "vtuple"):
            return f"{self._atom_type(t.args[0])} list"
        if t.kind == "tuple" and len(t.args) >= 2:
            return " * ".join(self._atom_type(a) for a in t.args)
        if t.kind == "dict":  # an association list; MultiPL-E wrote `(k, v) list`, a type error
            return f"({self._atom_type(t.args[0])} * {self._atom_type(t.args[1])}) list"
        if t.kind == "optional":
            return f"{self._atom_type(t.args[0])} option"
        if t.kind == "unknown":
            raise Unsupported("a type could not be inferred (only empty containers seen)")
        raise Unsupported(f"OCaml has no type for {t}")

    def _atom_type(self, t: PyType) -> str:
        text = self.render_type(t)  # a tuple inside a list/option/tuple needs parentheses (87)
        return f"({text})" if t.kind == "tuple" else text

    def render_value(self, value, t: PyType) -> str:
        if t.kind == "optional":
            return "None" if value is None else f"(Some {self.value(value, t.args[0])})"
        if isinstance(value, bool):
            return "true" if value else "false"
        if t.kind == "float":
            return ocaml_float(value)
        if isinstance(value, int):
            return f"({value})" if value < 0 else str(value)
        if isinstance(value, str):
            return ocaml_string(value)
        if t.kind in ("list", "vtuple"):
            return "[" + "; ".join(self.value(v, t.args[0]) for v in value) + "]"
        if t.kind == "tuple":
            return "(" + ", ".join(self.value(v, e) for v, e in zip(value, t.args)) + ")"
        if t.kind == "dict":
            kt, vt = t.args
            return "[" + "; ".join(f"({self.value(k, kt)}, {self.value(v, vt)})"
                                   for k, v in value.items()) + "]"
        raise Unsupported(f"cannot render {value!r} as {t}")

    def render_call(self, func: str, args: list[str]) -> str:
        return " ".join([func, *(args or ["()"])])

    def render_prompt(self, name: str, params: list[Param], returns: PyType, description: str) -> str:
        doc = comment_text(description).replace("\n", "\n * ")
        args = "".join(f" ({self.identifier(p.name)} : {self.render_type(p.type)})" for p in params)
        if not params:
            args = " ()"
        return f"(**{doc}\n*)\nlet {self.identifier(name)}{args} : {self.render_type(returns)} ="

    def render_assert(self, call: str, expected: str, tolerance: float | None) -> str:
        if tolerance is not None:
            return f"  assert (abs_float (({call}) -. {expected}) < {tolerance!r});"
        return f"  assert (({call}) = {expected});"

    def render_case(self, name, params, returns, case):
        line = super().render_case(name, params, returns, case)
        if returns.kind != "dict" or case.tolerance is not None:
            return line
        # A Python dict compares without order; an association list compares in order, so a
        # correct solution listing the pairs in another order would fail. Sort both sides.
        call, expected = line[len("  assert (("):-len(");")].split(") = ", 1)
        return f"  assert (List.sort compare ({call}) = List.sort compare {expected});"

    def render_test_file(self, name: str, asserts: list[str]) -> str:
        body = "\n".join(asserts)
        return f"let assertions =\n let candidate = {self.identifier(name)} in\n{body}\n  ()\n"

    def return_body(self, expr: str) -> str:
        return f"\n  {expr}\n"

    def command(self, path: str) -> list[str]:
        return ["ocaml", path]

    def fork_server(self, folder: str, library: str) -> list[str] | None:
        """The `ocaml` toplevel started once (loading its 20 MB of bytecode is most of a fresh
        `ocaml` run). The server is the toplevel running a script of ours (_SERVER) that loads
        a primitive library (_GLUE, with init.c's fork server compiled in: the toplevel loads
        it privately, so it cannot use `library`'s symbols) and forks; in each program it runs
        the program file with the toplevel's own script runner (Toploop.run_script, what
        `ocaml FILE` calls: a fresh typing environment, same messages) and exits as `ocaml`
        does (0, or 2 when a phrase failed). One OS thread, no timer signal: a fork is a whole
        runtime."""
        ocaml, ocamlc = shutil.which("ocaml"), shutil.which("ocamlc")
        if not (ocaml and ocamlc):
            return None
        where = subprocess.run([ocamlc, "-where"], capture_output=True, text=True, timeout=60,
                               check=True).stdout.strip()
        if not os.path.exists(os.path.join(where, "caml", "mlvalues.h")):
            raise OSError(f"no OCaml C headers in {where}")
        from multiplt.execution import native  # the execution side builds C the one way

        dll = native.build_source(folder, "dllmultiplt_fork.so", native.source() + _GLUE.encode(),
                                  [["-shared", "-fPIC", "-DMULTIPLT_FORK_SERVER", f"-I{where}"]])
        cma = os.path.join(folder, "multiplt_fork.cma")
        subprocess.run([ocamlc, "-a", "-o", cma, "-dllib", os.path.abspath(dll)],
                       capture_output=True, timeout=120, check=True)
        server = os.path.join(folder, "server.ml")
        with open(server, "w", encoding="utf-8") as f:
            f.write(_SERVER.format(cma=ocaml_string(os.path.abspath(cma))))
        for path in (cma, server):
            os.chmod(path, 0o644)
        return ["ocaml", server]

    def classify(self, exit_code: int, stdout: str, stderr: str) -> str:
        if exit_code == 0:
            return OK
        # The toplevel compiles each phrase before running it: lexer, parser and type errors all
        # print "Error: ..." after a "File ..., line N" locator.
        if contains(stderr, r"^Error: ", r"Syntax error", r"^Lexer error"):
            return SYNTAX_ERROR
        if contains(stderr, r"Assert_failure"):
            return ASSERTION_ERROR
        return EXCEPTION


# The fork server's primitives (fork_server), appended to init.c's source.
_GLUE = r"""
#include <caml/mlvalues.h>
#include <caml/alloc.h>

value multiplt_ocaml_serve(value fd) { return Val_int(multiplt_serve(Int_val(fd))); }
value multiplt_ocaml_program(value unit) { (void)unit; return caml_copy_string(multiplt_program()); }
"""

# The server, a toplevel script: `ocaml FILE` ends with exit status 0 when every phrase of FILE
# ran, else 2 (Topmain); the program's own `exit n` leaves before that.
_SERVER = """#load {cma};;
#directory "+compiler-libs";;
external serve : int -> int = "multiplt_ocaml_serve";;
external program : unit -> string = "multiplt_ocaml_program";;
let () =
  Gc.compact ();
  if serve 3 <> 0 then exit 0;
  let path = program () in
  exit (if Toploop.run_script Format.err_formatter path [|path|] then 0 else 2);;
"""
