"""OCaml (`ml`): run as a toplevel script; tests are `assert (a = b)`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from multiplt.languages.base import (ASSERTION_ERROR, EXCEPTION, OK, SYNTAX_ERROR, Language,
                                     Param, Unsupported, checked_nonce, contains, decimal_escaped,
                                     first_match)
from multiplt.languages.types import PyType

_ASSERTIONS = "let assertions ="  # render_test_file's first line

# What the sealed asserts (seal_tests) may use, as primitives or code made of them, each with
# the pattern that finds its use in the asserts (render_assert, render_case, ocaml_float): only
# those used are defined (each costs a forked program some type checking). List.sort is an
# insertion sort by the given comparison (equal elements are equal values: it sorts as Stdlib's).
_PRIMITIVES = (
    (r"", "external ( = ) : 'a -> 'a -> bool = \"%equal\""),
    (r"<", "external ( < ) : 'a -> 'a -> bool = \"%lessthan\""),
    (r"-\.", "external ( -. ) : float -> float -> float = \"%subfloat\""),
    (r"\babs_float\b", "external abs_float : float -> float = \"%absfloat\""),
    (r"\b(?:infinity|neg_infinity|nan)\b",
     "external float_of_string : string -> float = \"caml_float_of_string\""),
    (r"\binfinity\b", "let infinity = float_of_string \"inf\""),
    (r"\bneg_infinity\b", "let neg_infinity = float_of_string \"-inf\""),
    (r"\bnan\b", "let nan = float_of_string \"nan\""),
    (r"\bList\.sort\b", "external compare : 'a -> 'a -> int = \"%compare\"\n"
     "  external ( <= ) : 'a -> 'a -> bool = \"%lessequal\"\n  module List = struct\n"
     "    let sort cmp l =\n"
     "      let rec insert x = function [] -> [x] | y :: r -> if cmp x y <= 0 then x :: y :: r "
     "else y :: insert x r in\n"
     "      let rec sort = function [] -> [] | x :: r -> insert x (sort r) in\n"
     "      sort l\n  end"),
)


def _primitives(asserts: str) -> str:
    """The local module that the sealed asserts see first (seal_tests), opened."""
    lines = "".join(f"  {line}\n" for pattern, line in _PRIMITIVES if re.search(pattern, asserts))
    return f" let module Multiplt = struct\n{lines} end in\n let open Multiplt in\n"


#: what the sealed tests cannot keep out: a toplevel directive (`#directory "+compiler-libs"`,
#: `#load`, `#use`, ...), which can reach the toplevel itself (Toploop) and change how the
#: phrases after it are read and run
_TAMPERING = (re.compile(r"(?:^|;;)[ \t]*#[ \t]*[A-Za-z_]\w*", re.MULTILINE),)

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_SCALARS = {"int": "int", "float": "float", "bool": "bool", "str": "string"}


def ocaml_string(text: str) -> str:
    """An OCaml string literal (MultiPL-E did not escape; see docs/languages.md)."""
    return decimal_escaped(text, _ESCAPES)


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
    packages = ("ocaml-nox",)
    test_marker = "\nlet assertions"
    comment = ("(*", "*)")
    empty_comment = r"\*|\(\*+\s*\*\)"
    comment_patterns = (r"\(\*.*?\*\)",)
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
        return f"{_ASSERTIONS}\n let candidate = {self.identifier(name)} in\n{body}\n  ()\n"

    def seal_tests(self, tests: str, nonce: str) -> str:
        # After the function under test is bound, the asserts see a local module's names first:
        # the operators, functions and constants they use (`=`, `compare`, `List.sort`,
        # `infinity`, ...) as OCaml's own primitives (`external`, which nothing can redefine) or
        # code made of them, so nothing the translation defined or shadowed (Stdlib itself
        # included) changes what they compare. A failed assert raises: `ocaml` stops at that
        # phrase (exit 2), before the last one.
        head = f"{_ASSERTIONS}\n let candidate = "
        if not tests.startswith(head) or "\n" not in tests[len(head):]:
            raise ValueError("not an OCaml test file of render_test_file")
        at = tests.index("\n", len(head)) + 1
        return (f"{tests[:at]}{_primitives(tests[at:])}{tests[at:]}"
                f"\nlet () = Stdlib.print_endline \"{checked_nonce(nonce)}\"\n")

    def tampers_with_tests(self, prompt: str, completion: str) -> str | None:
        return first_match(completion, _TAMPERING)

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

        dll = native.build_fork_glue(folder, "dllmultiplt_fork.so", _GLUE, (f"-I{where}",))
        cma = os.path.join(folder, "multiplt_fork.cma")
        subprocess.run([ocamlc, "-a", "-o", cma, "-dllib", os.path.abspath(dll)],
                       capture_output=True, timeout=120, check=True)
        server, warm_up = os.path.join(folder, "server.ml"), os.path.join(folder, "warm_up.ml")
        with open(warm_up, "w", encoding="utf-8") as f:
            f.write(_WARM_UP)
        with open(server, "w", encoding="utf-8") as f:
            f.write(_SERVER.format(cma=ocaml_string(os.path.abspath(cma)),
                                   warm_up=ocaml_string(os.path.abspath(warm_up)),
                                   script=ocaml_string(os.path.realpath(server))))
        for path in (cma, server, warm_up):
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
#include <dirent.h>
#include <caml/mlvalues.h>
#include <caml/alloc.h>

/* serve(control_fd, script): in each program (0), first closes the descriptor the toplevel
 * holds on the server's own script, so the program's descriptors are those of `ocaml FILE`.
 * That descriptor is looked for once, in the server: every program inherits the same table. */
value multiplt_ocaml_serve(value fd, value script) {
    int open_on_script = -1;
    DIR *dir = opendir("/proc/self/fd");
    if (dir) {
        struct dirent *entry;
        char path[64], link[4096];
        int mine = dirfd(dir);
        while ((entry = readdir(dir))) {
            int n = atoi(entry->d_name);
            snprintf(path, sizeof path, "/proc/self/fd/%d", n);
            ssize_t len = readlink(path, link, sizeof link - 1);
            if (n == mine || len < 0) continue;
            link[len] = 0;
            if (strcmp(link, String_val(script)) == 0) open_on_script = n;
        }
        closedir(dir);
    }
    multiplt_share_init();
    int result = multiplt_serve(Int_val(fd));
    if (result == 0 && open_on_script >= 0) close(open_on_script);
    return Val_int(result);
}

value multiplt_ocaml_program(value unit) { (void)unit; return caml_copy_string(multiplt_program()); }
"""

# The server, a toplevel script. `ocaml FILE` (Topmain) calls Toploop.run_script, which sets
# the load path (FILE's folder first, then the standard library's), empties the cache of
# compiled interfaces (.cmi), builds the initial typing environment (Stdlib opened), then runs
# FILE's phrases (use_silently) and ends with exit status 0 when every phrase ran, else 2. The
# server does the first three once, for a file in /tmp as every program is (a name that does not
# exist: run_script stops there), and reads the standard library interfaces that test programs
# use (WARM_UP, its own, then forgotten: the environment is set back to the initial one); each
# program then runs its phrases in that initial environment.
_SERVER = """#load {cma};;
#directory "+compiler-libs";;
external serve : int -> string -> int = "multiplt_ocaml_serve";;
external program : unit -> string = "multiplt_ocaml_program";;
let () =
  let quiet = Format.make_formatter (fun _ _ _ -> ()) ignore in
  ignore (Toploop.run_script quiet "/tmp/.multiplt-no-such-file.ml" [||]);
  let initial = !Toploop.toplevel_env in
  ignore (Toploop.use_silently quiet {warm_up});
  Toploop.toplevel_env := initial;
  Gc.compact ();
  if serve 3 {script} <> 0 then exit 0;
  let path = program () in
  Toploop.override_sys_argv [|path|];
  exit (if Toploop.use_silently Format.err_formatter path then 0 else 2);;
"""

_WARM_UP = """let _ = List.length [1] + String.length "a" + Char.code 'a' + Array.length [||]
let _ = Printf.sprintf "%d %s %f" 1 "a" 1.0, Buffer.create 1, Bytes.create 1, Hashtbl.create 1
let _ = Float.abs 1.0, Int.abs 1, Option.is_some None, Seq.empty, String.concat "" [], compare 1 2
let _ = try assert (List.rev [1; 2] = [1; 2]) with Assert_failure _ -> ()
let _ = (fun (x : int) : int option -> Some x) 1, List.map (fun (a, b) -> a + b) [(1, 2)]
"""
