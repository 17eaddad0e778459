"""Hostile programs, one per attack per language, for tests/integration/test_sandbox_hostile.py.

Placeholders: @PORT@ (a TCP listener the test opens on the host's 127.0.0.1), @VICTIM@ (a
world-writable host folder holding victim.txt: only the sandbox's read-only mount protects it),
@HOSTPID@ (the test's own pid, a target for kill). Languages without fork or sockets in their
standard library use the shell through their `system` call, as a generated program could.
Every program is written so that its attack "succeeding" would not make it end OK either way;
the test checks the side effects (connections, files, processes) separately.
"""

from __future__ import annotations

import base64

SHELL_FORK_BOMB = "f(){ f|f& }; f"
SHELL_KILL_PARENT = "kill -9 $(cut -d' ' -f4 /proc/$PPID/stat); kill -9 @HOSTPID@"
SHELL_SETSID = "setsid sh -c 'sleep 2; echo late > @VICTIM@/late.txt; sleep 1000' &"

CASES = ("fork_bomb", "infinite_loop", "sleep_forever", "read_stdin", "endless_output",
         "allocate_50gb", "connect_localhost", "write_outside", "kill_parent", "setsid_child")

PROGRAMS: dict[str, dict[str, str]] = {
    "py": {
        "fork_bomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
        "infinite_loop": "while True:\n    pass\n",
        "sleep_forever": "import time\ntime.sleep(10**6)\n",
        "read_stdin": "x = input()\nassert int(x) == 5\n",
        "endless_output": "while True:\n    print('x' * 1000)\n",
        "allocate_50gb": "b = bytearray(50 * 10**9)\nprint(len(b))\n",
        "connect_localhost": ("import socket\n"
                              "socket.create_connection(('127.0.0.1', @PORT@), timeout=2).sendall(b'hi')\n"),
        "write_outside": (
            "import os\nerrors = 0\n"
            "for action in (lambda: open('@VICTIM@/victim.txt', 'w').write('owned'),\n"
            "               lambda: os.remove('@VICTIM@/victim.txt'),\n"
            "               lambda: open('@VICTIM@/new.txt', 'w').write('new'),\n"
            "               lambda: open('/dev/shm/multiplt-hostile', 'w').write('x'),\n"
            "               lambda: os.rename('@VICTIM@/victim.txt', '@VICTIM@/moved.txt')):\n"
            "    try:\n        action()\n    except OSError:\n        errors += 1\n"
            "assert errors == 0, f'{errors} writes refused'\n"),
        "kill_parent": ("import os, signal, time\n"
                        "for pid in (os.getppid(), @HOSTPID@):\n"
                        "    try:\n        os.kill(pid, signal.SIGKILL)\n"
                        "    except OSError:\n        pass\n"
                        "time.sleep(10**6)\n"),
        "setsid_child": ("import subprocess, sys\n"
                         "subprocess.Popen(['sh', '-c', \"" + SHELL_SETSID + "\"])\n"
                         "sys.exit(1)\n"),
    },
    "rkt": {
        "fork_bomb": f'#lang racket\n(void (system "{SHELL_FORK_BOMB}"))\n(let loop () (loop))\n',
        "infinite_loop": "#lang racket\n(let loop () (loop))\n",
        "sleep_forever": "#lang racket\n(sleep 1000000)\n",
        "read_stdin": '#lang racket\n(define x (read-line))\n(unless (equal? x "5") (error "no input"))\n',
        "endless_output": "#lang racket\n(let loop () (displayln (make-string 1000 #\\x)) (loop))\n",
        "allocate_50gb": "#lang racket\n(define b (make-bytes 50000000000))\n(displayln (bytes-length b))\n",
        "connect_localhost": '#lang racket\n(define-values (in out) (tcp-connect "127.0.0.1" @PORT@))\n',
        "write_outside": (
            "#lang racket\n(define errors 0)\n"
            "(define (attempt thunk) (with-handlers ([exn:fail? (lambda (e) (set! errors (add1 errors)))]) (thunk)))\n"
            "(attempt (lambda () (with-output-to-file \"@VICTIM@/victim.txt\" (lambda () (display \"owned\")) #:exists 'truncate)))\n"
            "(attempt (lambda () (delete-file \"@VICTIM@/victim.txt\")))\n"
            "(attempt (lambda () (with-output-to-file \"@VICTIM@/new.txt\" (lambda () (display \"new\")))))\n"
            "(attempt (lambda () (with-output-to-file \"/dev/shm/multiplt-hostile\" (lambda () (display \"x\")))))\n"
            "(attempt (lambda () (rename-file-or-directory \"@VICTIM@/victim.txt\" \"@VICTIM@/moved.txt\")))\n"
            "(unless (zero? errors) (error \"writes refused:\" errors))\n"),
        "kill_parent": f'#lang racket\n(void (system "{SHELL_KILL_PARENT}"))\n(sleep 1000000)\n',
        "setsid_child": f'#lang racket\n(void (system "{SHELL_SETSID}"))\n(exit 1)\n',
    },
    "r": {
        "fork_bomb": f'system("{SHELL_FORK_BOMB}")\nrepeat {{}}\n',
        "infinite_loop": "repeat {}\n",
        "sleep_forever": "Sys.sleep(1e6)\n",
        "read_stdin": 'x <- readLines(file("stdin"), n = 1)\nif (length(x) == 0) stop("no input")\n',
        "endless_output": 'repeat cat(strrep("x", 1000), "\\n")\n',
        "allocate_50gb": "x <- raw(50e9)\nprint(length(x))\n",
        "connect_localhost": 'con <- socketConnection(host = "127.0.0.1", port = @PORT@, timeout = 2)\n',
        "write_outside": (
            "errors <- 0\n"
            "attempt <- function(expr) tryCatch({ force(expr); invisible(NULL) },\n"
            "  error = function(e) errors <<- errors + 1, warning = function(w) errors <<- errors + 1)\n"
            'attempt(writeLines("owned", "@VICTIM@/victim.txt"))\n'
            'attempt(if (!file.remove("@VICTIM@/victim.txt")) stop("no"))\n'
            'attempt(writeLines("new", "@VICTIM@/new.txt"))\n'
            'attempt(writeLines("x", "/dev/shm/multiplt-hostile"))\n'
            'attempt(if (!file.rename("@VICTIM@/victim.txt", "@VICTIM@/moved.txt")) stop("no"))\n'
            'if (errors > 0) stop(paste(errors, "writes refused"))\n'),
        "kill_parent": f'system("{SHELL_KILL_PARENT}")\nSys.sleep(1e6)\n',
        "setsid_child": f'system("{SHELL_SETSID}")\nquit(status = 1)\n',
    },
    "ml": {
        "fork_bomb": ('#load "unix.cma";;\n'
                      "let () = while true do (try ignore (Unix.fork ()) with Unix.Unix_error _ -> ()) done;;\n"),
        "infinite_loop": "let () = while true do () done;;\n",
        "sleep_forever": '#load "unix.cma";;\nlet () = Unix.sleep 1000000;;\n',
        "read_stdin": 'let x = read_line ();;\nlet () = assert (x = "5");;\n',
        "endless_output": "let () = while true do print_endline (String.make 1000 'x') done;;\n",
        "allocate_50gb": "let b = Bytes.create 50_000_000_000;;\nlet () = print_int (Bytes.length b);;\n",
        "connect_localhost": (
            '#load "unix.cma";;\n'
            "let () = let s = Unix.socket Unix.PF_INET Unix.SOCK_STREAM 0 in\n"
            '  Unix.connect s (Unix.ADDR_INET (Unix.inet_addr_of_string "127.0.0.1", @PORT@));;\n'),
        "write_outside": (
            "let errors = ref 0;;\n"
            "let attempt f = try f () with Sys_error _ -> incr errors;;\n"
            "let write path text = let oc = open_out path in output_string oc text; close_out oc;;\n"
            'let () = attempt (fun () -> write "@VICTIM@/victim.txt" "owned");;\n'
            'let () = attempt (fun () -> Sys.remove "@VICTIM@/victim.txt");;\n'
            'let () = attempt (fun () -> write "@VICTIM@/new.txt" "new");;\n'
            'let () = attempt (fun () -> write "/dev/shm/multiplt-hostile" "x");;\n'
            'let () = attempt (fun () -> Sys.rename "@VICTIM@/victim.txt" "@VICTIM@/moved.txt");;\n'
            'let () = if !errors > 0 then failwith (string_of_int !errors ^ " writes refused");;\n'),
        "kill_parent": ('#load "unix.cma";;\n'
                        "let () = List.iter (fun pid -> try Unix.kill pid Sys.sigkill with _ -> ())\n"
                        "  [Unix.getppid (); @HOSTPID@];;\n"
                        "let () = Unix.sleep 1000000;;\n"),
        "setsid_child": f'let () = ignore (Sys.command "{SHELL_SETSID}"); exit 1;;\n',
    },
    "lua": {
        "fork_bomb": f'os.execute("{SHELL_FORK_BOMB}")\nwhile true do end\n',
        "infinite_loop": "while true do end\n",
        "sleep_forever": 'os.execute("sleep 1000000")\n',
        "read_stdin": 'local x = io.read("l")\nassert(x == "5", "no input")\n',
        "endless_output": 'while true do print(string.rep("x", 1000)) end\n',
        "allocate_50gb": 'local s = string.rep("x", 50 * 1000 * 1000 * 1000)\nprint(#s)\n',
        "connect_localhost": ("local ok = os.execute(\"bash -c 'exec 3<>/dev/tcp/127.0.0.1/@PORT@'\")\n"
                              'if ok then os.exit(0) else error("no connection") end\n'),
        "write_outside": (
            "local errors = 0\n"
            "local function attempt(ok) if not ok then errors = errors + 1 end end\n"
            "local function write(path, text)\n"
            '  local f = io.open(path, "w"); attempt(f); if f then f:write(text); f:close() end\nend\n'
            'write("@VICTIM@/victim.txt", "owned")\n'
            'attempt(os.remove("@VICTIM@/victim.txt"))\n'
            'write("@VICTIM@/new.txt", "new")\n'
            'write("/dev/shm/multiplt-hostile", "x")\n'
            'attempt(os.rename("@VICTIM@/victim.txt", "@VICTIM@/moved.txt"))\n'
            'if errors > 0 then error(errors .. " writes refused") end\n'),
        "kill_parent": f'os.execute("{SHELL_KILL_PARENT}")\nos.execute("sleep 1000000")\n',
        "setsid_child": f'os.execute("{SHELL_SETSID}")\nos.exit(1)\n',
    },
}

# Prints what the sandbox looks like from inside, in each language: the test checks the limits.
INSPECT: dict[str, str] = {
    "py": ("for path in ('/proc/self/status', '/proc/self/limits', '/proc/net/dev'):\n"
           "    print(open(path).read())\n"),
    "rkt": ("#lang racket\n(for ([path '(\"/proc/self/status\" \"/proc/self/limits\" \"/proc/net/dev\")])\n"
            "  (displayln (file->string path)))\n"),
    "r": ('for (path in c("/proc/self/status", "/proc/self/limits", "/proc/net/dev"))\n'
          '  cat(readLines(path), sep = "\\n")\n'),
    "ml": ("let show path = let ic = open_in path in\n"
           "  (try while true do print_endline (input_line ic) done with End_of_file -> ());\n"
           "  close_in ic;;\n"
           'let () = List.iter show ["/proc/self/status"; "/proc/self/limits"; "/proc/net/dev"];;\n'),
    "lua": ('for _, path in ipairs({"/proc/self/status", "/proc/self/limits", "/proc/net/dev"}) do\n'
            '  local f = io.open(path); print(f:read("a")); f:close()\nend\n'),
}

COMMENT = {"py": "#", "rkt": ";", "r": "#", "ml": "(*", "lua": "--"}


def fill(program: str, port: int, victim: str, host_pid: int) -> str:
    return (program.replace("@PORT@", str(port)).replace("@VICTIM@", victim)
            .replace("@HOSTPID@", str(host_pid)))


# ---- the namespace's init (pid 1) holds the verdict: tests/unit/execution/test_init_reach.py ----
# Python scripts that a program runs through the shell (`through_shell`), so that every language
# attacks the same way: a child of the program, in its PID namespace, of its uid.

#: every way a process of the program's uid could reach its namespace's init: one line per way,
#: "NAME reached" where it worked, "NAME refused" where the kernel said no
REACH_INIT = r"""
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = libc.ptrace.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]


class IOVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def mem():
    open("/proc/1/mem", "rb").close()


def fd():
    os.listdir("/proc/1/fd")


def ptrace():  # PTRACE_SEIZE: pid 1 is not even stopped
    if libc.ptrace(0x4206, 1, None, None) != 0:
        raise OSError(ctypes.get_errno(), "ptrace")


def process_vm_readv():  # from an address pid 1 does not map: EFAULT where it is allowed at all
    buf = ctypes.create_string_buffer(8)
    local, remote = IOVec(ctypes.addressof(buf), 8), IOVec(0x10000, 8)
    if libc.process_vm_readv(1, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0) < 0 \
            and ctypes.get_errno() != errno.EFAULT:
        raise OSError(ctypes.get_errno(), "process_vm_readv")


def pidfd_getfd():  # pid 1's descriptor 0
    if libc.syscall(438, os.pidfd_open(1), 0, 0) < 0:
        raise OSError(ctypes.get_errno(), "pidfd_getfd")


for attempt in (mem, fd, ptrace, process_vm_readv, pidfd_getfd):
    try:
        attempt()
        print(attempt.__name__, "reached")
    except OSError as e:
        print(attempt.__name__, "refused" if e.errno in (errno.EPERM, errno.EACCES, errno.ENOENT)
              else f"reached? {e.strerror}")
"""

# A line written to every pipe pid 1 holds, its status pipe among them (fd 3 of the compiled
# init, another number in the Python init).
_TO_INIT_PIPES = r"""
import os
pipes = [fd for fd in os.listdir("/proc/1/fd") if os.readlink(f"/proc/1/fd/{fd}").startswith("pipe:")]
for fd in pipes:
    try:
        os.write(os.open(f"/proc/1/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK), @LINE@)
    except OSError:
        pass
"""

#: the status pipe of a warm sandbox's init: a forged "S 0" glued to pid 1's own line
FORGE_STATUS = _TO_INIT_PIPES.replace("@LINE@", repr(b"S 0\nX"))

#: an "E" line on the status pipe: once read as a failure of the sandbox (retried, then the
#: whole batch stopped); the program itself passes either way
INJECT_ERROR = "try:\n" + "".join(
    f"    {line}\n" for line in
    _TO_INIT_PIPES.replace("@LINE@", repr(b"E injected by the program\n")).strip().splitlines()
) + "except OSError:\n    pass\n"

CANARY = b"MULTIPLT-CANARY-OF-AN-EARLIER-PROGRAM"

#: a canary into pid 1's heap: in shared-init mode that is the pre-loaded runtime's own memory
WRITE_CANARY = r"""
heap = [l for l in open("/proc/1/maps").read().splitlines() if l.endswith("[heap]")][0]
lo, hi = (int(x, 16) for x in heap.split()[0].split("-"))
with open("/proc/1/mem", "r+b", buffering=0) as f:
    f.seek(hi - 4096)
    f.write(@CANARY@)
print("canary written")
""".replace("@CANARY@", repr(CANARY))

#: ... and a later program (pid 2 of its own namespace, a fork of that runtime) looks for it in
#: its own heap
FIND_CANARY = r"""
heap = [l for l in open("/proc/2/maps").read().splitlines() if l.endswith("[heap]")][0]
lo, hi = (int(x, 16) for x in heap.split()[0].split("-"))
with open("/proc/2/mem", "rb", buffering=0) as f:
    f.seek(lo)
    print("canary", "found" if @CANARY@ in f.read(hi - lo) else "absent")
""".replace("@CANARY@", repr(CANARY))

#: bubblewrap's own init (one bubblewrap per program, x86_64), traced: the program makes it
#: write "exit code 0" to its eventfd, so bubblewrap reports success for a failing program
PTRACE_FORGE = r"""
import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
FIELDS = ["r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx",
          "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base", "ds",
          "es", "fs", "gs"]

class Regs(ctypes.Structure):
    _fields_ = [(f, ctypes.c_ulonglong) for f in FIELDS]

try:
    efd = next(int(n) for n in os.listdir("/proc/1/fd")
               if os.readlink(f"/proc/1/fd/{n}") == "anon_inode:[eventfd]")
except OSError:
    efd = 7  # where bubblewrap 0.8 keeps it
if libc.ptrace(16, 1, None, None) == 0:  # PTRACE_ATTACH
    os.waitpid(1, 0x40000000)  # __WALL
    r = Regs()
    libc.ptrace(12, 1, None, ctypes.byref(r))  # PTRACE_GETREGS
    buf = r.rsp - 512
    libc.ptrace(5, 1, ctypes.c_void_p(buf), ctypes.c_void_p(1))  # POKEDATA: 1 = exit code 0
    r.rip -= 2  # back onto the syscall instruction pid 1 waits in, as write(efd, buf, 8)
    r.rax, r.orig_rax, r.rdi, r.rsi, r.rdx = 1, 2**64 - 1, efd, buf, 8
    libc.ptrace(13, 1, None, ctypes.byref(r))  # PTRACE_SETREGS
    libc.ptrace(7, 1, None, None)  # PTRACE_CONT
    time.sleep(0.5)
print("still here")
"""

#: system calls of another ABI than the machine's (x86_64) through a few bytes of machine code:
#: getpid of x32 and of i386; the filter kills the program (SIGSYS), else it prints the result
_MACHINE_CODE = r"""
import ctypes, mmap
page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
page.write(bytes.fromhex("@CODE@"))
function = ctypes.CFUNCTYPE(ctypes.c_long)(ctypes.addressof(ctypes.c_char.from_buffer(page)))
print("returned", function())
"""
FOREIGN_ABI = {
    "x32": _MACHINE_CODE.replace("@CODE@", "b827000040" "0f05" "c3"),  # mov eax, 0x40000027; syscall; ret
    "i386": _MACHINE_CODE.replace("@CODE@", "b814000000" "cd80" "c3"),  # mov eax, 20; int $0x80; ret
}

# A program in each language that reads its own /proc/self files: a fork of a runtime whose
# init is not dumpable must be dumpable again itself, as a fresh interpreter is
READ_OWN_PROC = {
    "py": 'print(len(open("/proc/self/environ", "rb").read()) > 0, len(open("/proc/self/auxv", "rb").read()) > 0)\n',
    "rkt": ('#lang racket\n(displayln (list (> (bytes-length (file->bytes "/proc/self/environ")) 0)\n'
            '                     (> (bytes-length (file->bytes "/proc/self/auxv")) 0)))\n'),
    "r": ('cat(length(readBin("/proc/self/environ", "raw", 1e6)) > 0,\n'
          '    length(readBin("/proc/self/auxv", "raw", 1e6)) > 0, "\\n")\n'),
    "ml": ('let size path = let ic = open_in_bin path in\n'
           '  let n = input ic (Bytes.create 4096) 0 4096 in close_in ic; n;;\n'
           'let () = Printf.printf "%b %b\\n" (size "/proc/self/environ" > 0) (size "/proc/self/auxv" > 0);;\n'),
    "lua": ('local function size(path) local f = assert(io.open(path, "rb")); local n = #f:read("a"); f:close(); return n end\n'
            'print(size("/proc/self/environ") > 0, size("/proc/self/auxv") > 0)\n'),
}


#: per language: (shell command, exit code) -> a program that runs the command and exits so
SHELL_CALL = {
    "py": lambda command, exit_code:
        f"import subprocess, sys\nsubprocess.run({command!r}, shell=True)\nsys.exit({exit_code})\n",
    "rkt": lambda command, exit_code: f'#lang racket\n(void (system "{command}"))\n(exit {exit_code})\n',
    "r": lambda command, exit_code: f'invisible(system("{command}"))\nquit(status = {exit_code})\n',
    "ml": lambda command, exit_code: f'let () = ignore (Sys.command "{command}"); exit {exit_code};;\n',
    "lua": lambda command, exit_code: f'os.execute("{command}")\nos.exit({exit_code})\n',
}


def through_shell(code: str, script: str, exit_code: int) -> str:
    """A program in language `code` that runs the Python `script` as a child process (through
    its shell call, as generated programs can) and then exits with `exit_code`. The script
    travels in base64, which needs no quoting in any of these languages' strings."""
    command = (f"echo {base64.b64encode(script.encode()).decode()} | base64 -d > /tmp/script.py;"
               " python3 /tmp/script.py")
    return SHELL_CALL[code](command, exit_code)


# The host's places of user data and sockets (test_view.py): a Python program that reads
# planted secrets, lists places that must look empty, connects to a unix socket planted on the
# host (a path: reachable through any mount, read-only or not) and to an abstract one (the
# host's network namespace), and, with @FIND@ true, looks for any socket file in its whole
# view. One JSON line: what each attempt got (the text read, the listing, "connected"), or the
# name of the exception it raised. @SECRETS@, @PLACES@, @SOCKETS@: lists of paths; @ABSTRACT@: a
# name (its result under the key "abstract").
PEEK_HOST = r"""
import json, os, socket, stat, subprocess
out = {"read": {}, "listed": {}, "connect": {}}
for path in @SECRETS@:
    try:
        with open(path) as f:
            out["read"][path] = f.read()
    except OSError as e:
        out["read"][path] = type(e).__name__
for path in @PLACES@:
    try:
        out["listed"][path] = sorted(os.listdir(path))
    except OSError as e:
        out["listed"][path] = type(e).__name__
for name, address in [(path, path) for path in @SOCKETS@] + [("abstract", "\0" + @ABSTRACT@)]:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(address)
        out["connect"][name] = "connected"
    except OSError as e:
        out["connect"][name] = type(e).__name__
    finally:
        s.close()
if @FIND@:
    found = subprocess.run(["find", "/", "(", "-path", "/proc", "-o", "-path", "/sys", ")",
                            "-prune", "-o", "-type", "s", "-print"], capture_output=True, text=True)
    # find goes by the folders' entries, which do not show what is mounted over a file
    out["sockets"] = [p for p in found.stdout.split() if stat.S_ISSOCK(os.lstat(p).st_mode)]
print(json.dumps(out))
"""


def peek_host(secrets, places, sockets, abstract, find=False) -> str:
    return (PEEK_HOST.replace("@SECRETS@", repr(list(secrets))).replace("@PLACES@", repr(list(places)))
            .replace("@SOCKETS@", repr(list(sockets))).replace("@ABSTRACT@", repr(abstract))
            .replace("@FIND@", repr(bool(find))))


# ---- kernel state shared across sandboxes: tests/unit/execution/test_kernel_shared.py ----------

#: each system call the filter refuses beyond reaching init: one line per call, "NAME refused"
#: where it failed with EPERM, else "NAME allowed" (it worked) or "NAME <errno name>". The
#: arguments are ones the kernel itself would accept or answer with another error than EPERM
#: (a bad descriptor, a user-mode-only userfaultfd), so EPERM is the filter's answer.
KERNEL_SHARED = r"""
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
L, S = ctypes.c_long, ctypes.c_char_p
NR = {"x86_64": dict(add_key=248, request_key=249, keyctl=250, io_uring_setup=425,
                     io_uring_enter=426, io_uring_register=427, bpf=321, perf_event_open=298,
                     userfaultfd=323),
      "aarch64": dict(add_key=217, request_key=218, keyctl=219, io_uring_setup=425,
                      io_uring_enter=426, io_uring_register=427, bpf=280, perf_event_open=241,
                      userfaultfd=282)}[os.uname().machine]
USER_KEYRING = -4  # KEY_SPEC_USER_KEYRING: shared by every process of the uid
payload = b"left for the next program"
io_params, bpf_attr, perf_attr = (ctypes.create_string_buffer(n) for n in (120, 128, 128))
ctypes.memmove(ctypes.addressof(bpf_attr), (ctypes.c_uint32 * 4)(2, 4, 4, 1), 16)  # an array map
ARGS = {
    "add_key": (S(b"user"), S(b"multiplt-probe"), S(payload), L(len(payload)), L(USER_KEYRING)),
    "request_key": (S(b"user"), S(b"multiplt-probe"), None, L(0)),
    "keyctl": (L(0), L(USER_KEYRING), L(1)),  # KEYCTL_GET_KEYRING_ID, creating it
    "io_uring_setup": (L(8), io_params),
    "io_uring_enter": (L(-1), L(0), L(0), L(0), None, L(0)),  # EBADF where it is allowed
    "io_uring_register": (L(-1), L(0), None, L(0)),  # EBADF where it is allowed
    "bpf": (L(0), bpf_attr, L(128)),  # BPF_MAP_CREATE
    "perf_event_open": (perf_attr, L(0), L(-1), L(-1), L(0)),
    "userfaultfd": (L(1),),  # UFFD_USER_MODE_ONLY: allowed unprivileged
}
for name, args in ARGS.items():
    result = libc.syscall(L(NR[name]), *args)
    err = ctypes.get_errno()
    print(name, "allowed" if result >= 0 else
          "refused" if err == errno.EPERM else errno.errorcode.get(err, str(err)))
"""
