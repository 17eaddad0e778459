"""Programs that corrupt a pre-loaded runtime, and programs that show its state, per language
with a fork server (tests/unit/execution/test_forkserver.py).

CORRUPT[code] changes everything a later program could notice if it shared the runtime: the
environment, the current directory, a library's global state (parameters, handlers, a variable
of the shared top-level namespace), a file in /tmp, and a thread left printing; then it shows the
state itself (proof that the corruption took). SHOW[code] prints the same state, prints a value,
fails a test assertion and raises, so that hijacked printers or handlers would show too.
"""

from __future__ import annotations

import re

#: output that differs between two runs of one program anyway (luaunit prints its run time)
_VOLATILE = {"lua": re.compile(r"(Ran \d+ tests? in )[\d.]+( seconds?)")}


def stable(code: str, text: str) -> str:
    """`text` with what varies from run to run (a measured time) masked."""
    pattern = _VOLATILE.get(code)
    return pattern.sub(r"\1#\2", text) if pattern else text

# Racket: the library's own functions are constants (a `set!` or redefinition through
# `module->namespace` is refused: "first: cannot modify a constant"), so a program corrupts what
# can change: global parameters and handlers (printer, error display, rackunit's check handler,
# `exit-handler`), a variable of the top-level namespace, a Chez Scheme global (ffi/unsafe/vm)
_RKT_SHOW = """(require ffi/unsafe/vm)
(printf "env ~a\\n" (getenv "MULTIPLT_LEFT"))
(printf "cwd ~a\\n" (current-directory))
(printf "mark ~a\\n" (with-handlers ([(lambda (e) #t) (lambda (e) 'unbound)])
                        (eval 'multiplt-mark (current-namespace))))
(printf "namespace ~a\\n" (length (namespace-mapped-symbols)))
(printf "chez ~a\\n" (vm-eval '(if (top-level-bound? 'multiplt-mark) multiplt-mark 'unbound)))
(printf "run-file ~a\\n" (find-system-path 'run-file))
(printf "preload ~a\\n" (getenv "LD_PRELOAD"))
(exit-handler (let ([exit (exit-handler)]) (lambda (code) (printf "exit ~a\\n" code) (exit (+ code 2)))))
(printf "file ~a\\n" (file-exists? "/tmp/left.txt"))
(list 1 2)
(check-equal? (+ 1 1) 3)
(car 1)
"""

_R_SHOW = """cat("env", Sys.getenv("MULTIPLT_LEFT"), "\\n")
cat("tunables", Sys.getenv("GLIBC_TUNABLES", "unset"), "\\n")
system("echo child tunables ${GLIBC_TUNABLES:-unset}")
cat("cwd", getwd(), "\\n")
cat("mark", exists("multiplt_mark"), "\\n")
cat("file", file.exists("/tmp/left.txt"), "\\n")
cat("seed", exists(".Random.seed"), "median", median(c(1, 3, 100)), "\\n")
print(pi)
stopifnot(isTRUE(all.equal(1, 2)))
"""

# Lua has no OS threads, no setenv and no chdir; a corrupted luaunit (the module every program
# shares in the server), string library, globals, collector, debug hook and a suspended coroutine
_LUA_SHOW = """lu = require('luaunit')
print("mark", rawget(_G, "multiplt_mark"), lu.multiplt_mark, package.loaded.multiplt_mark)
print("file", io.open("/tmp/left.txt") ~= nil)
print("upper", string.upper("abc"), ("abc"):rep(2))
print("gc", collectgarbage("isrunning"), debug.gethook(), getmetatable(_G))
print("check", pcall(lu.assertEquals, 1, 2))
print("global", undefined_global)
error("raised")
"""

# OCaml: the toplevel's own printer (a compiler-libs hook), Format and Printexc settings, an
# at_exit function, then env, cwd and a thread through the unix and threads libraries
_ML_SHOW = """let () = Printf.printf "env %s\\n" (try Sys.getenv "MULTIPLT_LEFT" with Not_found -> "unset")
let () = Printf.printf "cwd %s\\n" (Sys.getcwd ())
let () = Printf.printf "file %b\\n" (Sys.file_exists "/tmp/left.txt")
let () = print_endline (String.concat " " (List.sort compare (Array.to_list (Sys.readdir "/proc/self/fd"))))
let () = Printf.printf "margin %d backtrace %b\\n" (Format.get_margin ()) (Printexc.backtrace_status ())
let () = Printf.printf "random %d randomized %b\\n" (Random.int 1000000) (Hashtbl.is_randomized ())
let multiplt_mark = [1; 2]
let () = assert (List.length multiplt_mark = 3)
"""

CORRUPT: dict[str, str] = {
    "ml": """#directory "+threads";;
#load "unix.cma";;
#load "threads.cma";;
#directory "+compiler-libs";;
let () = Unix.putenv "MULTIPLT_LEFT" "corrupted"
let () = Sys.chdir "/"
let () = let oc = open_out "/tmp/left.txt" in output_string oc "x"; close_out oc
let () = Format.set_margin 20; Printexc.record_backtrace true
let () = at_exit (fun () -> print_endline "HIJACKED at_exit")
let () = Toploop.print_out_phrase := (fun ppf _ -> Format.fprintf ppf "HIJACKED phrase@.")
let _ = Thread.create (fun () -> while true do print_endline "leftover thread"; Thread.delay 0.001 done) ()
let () = if Unix.fork () = 0 then (while true do print_endline "leftover child"; Unix.sleepf 0.001 done)
let () = Random.init 42; Hashtbl.randomize ()
let () = Thread.delay 0.01
""" + _ML_SHOW,
    "lua": """lu = require('luaunit')
multiplt_mark = "corrupted"
lu.multiplt_mark = "corrupted"
package.loaded.multiplt_mark = "corrupted"
io.open("/tmp/left.txt", "w"):write("x"):close()
string.upper = function() return "HIJACKED upper" end
getmetatable("").__index.rep = function() return "HIJACKED rep" end
lu.assertEquals = function() return "HIJACKED check" end
collectgarbage("stop")
debug.sethook(function() end, "", 1000000)
setmetatable(_G, {__index = function(_, k) return "HIJACKED global " .. k end})
local co = coroutine.create(function() coroutine.yield() end)
coroutine.resume(co)
""" + _LUA_SHOW,
    # R has no threads to leave: a child process left printing; a redefined base function, a
    # function of an attached package replaced in its namespace, a changed option and seed
    "r": """Sys.setenv(MULTIPLT_LEFT = "corrupted")
system("while true; do echo leftover child; sleep 0.001; done", wait = FALSE)
set.seed(1)
assignInNamespace("median", function(x, ...) "HIJACKED median", "stats")
setwd("/")
multiplt_mark <- "corrupted"
writeLines("x", "/tmp/left.txt")
options(digits = 2)
unlockBinding("stopifnot", baseenv())
assign("stopifnot", function(...) cat("HIJACKED stopifnot\\n"), envir = baseenv())
""" + _R_SHOW,
    "rkt": """#lang racket
(require rackunit)
(putenv "MULTIPLT_LEFT" "corrupted")
(current-directory "/")
(namespace-set-variable-value! 'multiplt-mark 'corrupted #t (current-namespace))
(with-output-to-file "/tmp/left.txt" (lambda () (display "x")))
(current-print (lambda (v) (displayln "HIJACKED print")))
(error-display-handler (lambda (msg e) (displayln "HIJACKED error" (current-error-port))))
(current-check-handler (lambda (e) (displayln "HIJACKED check" (current-error-port))))
(exit-handler (let ([exit (exit-handler)]) (lambda (code) (displayln "HIJACKED exit") (exit code))))
(vm-eval '(define multiplt-mark 'corrupted))
(void (thread (lambda () (let loop () (displayln "leftover thread") (sleep 0.001) (loop)))))
""" + _RKT_SHOW,
}

SHOW: dict[str, str] = {
    "ml": _ML_SHOW,
    "lua": _LUA_SHOW,
    "r": _R_SHOW,
    "rkt": "#lang racket\n(require rackunit)\n" + _RKT_SHOW,
}

#: text that only a corrupted runtime prints
MARKS = ("corrupted", "HIJACKED", "leftover")
