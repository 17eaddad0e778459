"""R (`r`): tests are `stopifnot(isTRUE(all.equal(a, b)))`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from multiplt.languages.base import (ASSERTION_ERROR, EXCEPTION, OK, SYNTAX_ERROR, Language,
                                     Param, Unsupported, checked_nonce, contains, first_match)
from multiplt.languages.types import PyType, member_for

#: the test harness function every R test file defines and calls (MultiPL-E's name)
HARNESS = "test_humaneval"

# render_test_file's output: the harness function (without its closing brace) and its call
_SEALABLE = re.compile(rf"{HARNESS} <- (?P<harness>function\(\) \{{\ncandidate <- (?P<name>\S+)\n.*)"
                       rf"\n\}}\n{HARNESS}\(\)", re.DOTALL)
_SYNTAX = r"(?:::|:::|<<?-|->>?|=|function|\{|\()"  # R's syntax, which R looks up as functions
_WORD = r"(?<![\w.])(?:{})(?![\w.])"
#: what the sealed tests (seal_tests) cannot keep out: a binding of R's syntax functions (the
#: top-level `<-` and `::`) by name; S3 methods of all.equal (its list comparisons dispatch from
#: base's namespace, whose parent is the global environment); and what rebinds or reaches into
#: bindings from outside: active bindings, unlocked or namespace bindings, attached environments,
#: traced functions, registered S3 methods, the callers' frames (the running harness's).
_TAMPERING = tuple(re.compile(p) for p in (
    rf"`{_SYNTAX}`",
    rf"([\"']){_SYNTAX}\1\s*<<?-",
    rf"->>?\s*([\"']){_SYNTAX}\1",
    rf"(?<![\w.])(?:assign|delayedAssign)\s*\(\s*([\"']){_SYNTAX}\1",
    r"(?<![\w.])all\.equal\.[\w.]",
    _WORD.format("makeActiveBinding|unlockBinding|assignInNamespace|assignInMyNamespace|"
                 "registerS3methods?|\\.S3method|\\.Internal|parent\\.frame|parent\\.env|"
                 "sys\\.frames?|sys\\.function"),
    r"(?<![\w.])(?:attach|trace)\s*\(",
))

# a string literal (R's raw strings r"(...)", r"---[...]---" included), a backquoted name, a comment
_LEXEMES = re.compile(r"""(?P<raw>(?<![\w.])[rR](?P<q>["'])(?P<dash>-*)(?P<open>[(\[{]))|"""
                      r"""(?P<str>(?P<sq>["'])(?:\\.|(?!(?P=sq)).)*?(?:(?P=sq)|\Z))|`(?:\\.|[^`\\])*`|#[^\n]*""",
                      re.DOTALL)
_CLOSE = {"(": ")", "[": "]", "{": "}"}
_NAMED_SYNTAX = re.compile(rf"([\"']){_SYNTAX}\1\s*=(?!=)")
_PAIRS = re.compile(r'"[^"]*"|`(?:\\.|[^`\\])*`|[()\[\]{}]')


def _code(text: str) -> str:
    """R code without its comments and with every string literal `""`, except one that is the
    name of a piece of R's syntax (`"("`, `'<-'`), kept as `"("`: what the static check reads."""
    out, i = [], 0
    while True:
        found = _LEXEMES.search(text, i)
        if not found:
            return "".join(out) + text[i:]
        out.append(text[i:found.start()])
        lexeme = found.group(0)
        if found["raw"]:
            end = text.find(_CLOSE[found["open"]] + found["dash"] + found["q"], found.end())
            i = len(text) if end < 0 else end + len(found["dash"]) + 2
            body = text[found.end():end] if end >= 0 else ""
        elif found["str"]:
            i, body = found.end(), lexeme[1:-1]
        else:
            i = found.end()
            out.append("" if lexeme.startswith("#") else lexeme)
            continue
        out.append(f'"{body}"' if re.fullmatch(_SYNTAX, body) else '""')


def _string_binding(code: str) -> str | None:
    """A binding by `=` of a piece of R's syntax named by a string (`"(" = function(x) 1`):
    where `=` assigns, at the start of a statement (of the program, of a `{}` block, after `;`,
    after `if (...)`, `else` or a grouping `(`), not where it names an argument
    (`switch(ch, "(" = 1)`, `c("(" = 1)`)."""
    for found in _NAMED_SYNTAX.finditer(code):
        before = code[:found.start()]
        stack = []
        for pair in _PAIRS.finditer(before):
            c = pair.group(0)
            if c in "([{":
                stack.append((c, before[:pair.start()].rstrip(" \t")))
            elif c in ")]}" and stack:
                stack.pop()
        prefix = before.rstrip(" \t")
        inner, opened = stack[-1] if stack else ("{", "")
        statement = (not prefix or prefix[-1] in "\n;{" or prefix[-1] == ")"
                     or re.search(r"(?<![\w.])else$", prefix)) and inner == "{"
        grouping = prefix.endswith("(") and inner == "(" and not re.search(r"[\w.`)\]]$", opened)
        if statement or grouping:
            return " ".join(found.group(0).split())[:60]
    return None


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}
# R's atomic vector kinds: elements of one kind go in c(...), anything else in list(...)
_ATOMIC = {"int": "numeric", "float": "numeric", "bool": "logical", "str": "character"}


def r_float(value) -> str:
    """A numeric literal; Python's inf, -inf and nan are R's `Inf`, `-Inf` and `NaN`."""
    text = repr(float(value))
    return {"inf": "Inf", "-inf": "-Inf", "nan": "NaN"}.get(text, text)


def r_string(text: str) -> str:
    """An R string literal. R strings cannot hold NUL (the parser refuses `\\0` and `\\x00`,
    and drops a raw one, reading `"a<NUL>b"` as `"ab"`): Unsupported, so a test value holding
    one is dropped with the reason instead of written as another string."""
    if "\0" in text:
        raise Unsupported(f"R strings cannot hold the NUL character of {text!r}")
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
    packages = ("r-base-core",)
    test_marker = f"\n{HARNESS}"
    comment = ("#", "")
    empty_comment = r"#+"
    comment_patterns = (r"#[^\n]*",)
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
        if t.kind == "float" or isinstance(value, float):
            return r_float(value)
        if isinstance(value, int):
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
        return (f"{HARNESS} <- function() {{\ncandidate <- {self.identifier(name)}\n{body}\n}}\n"
                f"{HARNESS}()")

    def seal_tests(self, tests: str, nonce: str) -> str:
        # The harness closure is made in an environment of its own whose parent is base's (it
        # holds the function under test, then is locked): every name the tests use (stopifnot,
        # isTRUE, all.equal, c, list, `-`, `{`, `<-`, ...) resolves there or in base, never in
        # the global environment or the search path, whatever the translation defined or attached
        # (all.equal's top-level S3 dispatch too). The nonce is the harness's last line: a failed
        # stopifnot is an error that leaves the harness (then Rscript stops with exit 1, or goes
        # on under options(error = ...), but past the nonce). What still resolves globally (`<-`
        # and `::` at top level, the harness's global binding) is left to tampers_with_tests.
        found = _SEALABLE.fullmatch(tests)
        if not found:
            raise ValueError("not an R test file of render_test_file")
        return (f"{HARNESS} <- base::eval(base::quote({found['harness']}\n"
                f"cat(\"{checked_nonce(nonce)}\\n\")\n}}), base::list2env(base::list("
                f"{found['name']} = {found['name']}), parent = base::baseenv()))\n"
                f"base::lockEnvironment(base::environment({HARNESS}), bindings = TRUE)\n"
                f"{HARNESS}()\n")

    def tampers_with_tests(self, prompt: str, completion: str) -> str | None:
        code = _code(completion)
        return first_match(code, _TAMPERING) or _string_binding(code)

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
        (met when reached), same `Error ... Execution halted`, same exit status. The forking is
        init.c's, compiled here with R's own glue (_GLUE: the session's temp folder removed
        in-process at exit instead of by `sh -c 'rm -Rf ...'`)."""
        rscript = shutil.which("Rscript")
        if not rscript:
            return None
        r_bin = os.path.join(_r_home(rscript), "bin", "R")
        if not os.access(r_bin, os.X_OK):
            return None
        from multiplt.execution import native  # the execution side builds C the one way

        glue = native.build_fork_glue(folder, "multiplt-r-fork.so", _GLUE,
                                      (f'-DHARNESS="{HARNESS}"',))
        path = os.path.abspath(os.path.join(folder, "server.R"))
        with open(path, "w", encoding="utf-8") as f:
            f.write(_SERVER.format(library=r_string(os.path.abspath(glue)), script=r_string(path)))
        os.chmod(path, 0o644)
        return ["env", f"GLIBC_TUNABLES={_MALLOC_TUNABLES}", r_bin, "--no-echo", "--no-restore",
                "--vanilla", f"--min-nsize={_MIN_NSIZE}", f"--file={path}"]

    def classify(self, exit_code: int, stdout: str, stderr: str) -> str:
        if exit_code == 0:
            return OK
        if contains(stderr, r"^Error: unexpected", r"^Error in parse\(", r"unexpected end of input",
                    r"unexpected (symbol|string constant|numeric constant|'[^']*'|input)"):
            return SYNTAX_ERROR
        if contains(stderr, r"is not TRUE", r"are not all TRUE"):
            return ASSERTION_ERROR
        return EXCEPTION


def _r_home(rscript: str) -> str:
    """R's home folder: from the `R` shell script beside Rscript (`R RHOME` only prints it, a
    few ms), else from R itself (a fresh start, about 0.15 s)."""
    r_script = os.path.join(os.path.dirname(rscript), "R")
    if os.access(r_script, os.X_OK):
        home = subprocess.run([r_script, "RHOME"], capture_output=True, text=True, timeout=60)
        if home.returncode == 0 and os.path.isdir(home.stdout.strip()):
            return home.stdout.strip()
    return subprocess.run([rscript, "--vanilla", "-e", "cat(R.home())"], capture_output=True,
                          text=True, timeout=60, check=True).stdout.strip()


# glibc's malloc in the server (and so in every program forked from it): a forked R program's
# byte compiler allocates some megabytes per compiled function, and every fresh 4 KiB page it
# touches is a page fault (about a third of a program's CPU). With these tunables the heap is
# advised as transparent huge pages (one fault per 2 MiB where the kernel allows it), large
# blocks come from that heap instead of fresh mappings (mmap_threshold 64 MiB), freed memory
# stays for the program's next allocation (trim_threshold 1 GiB) and the heap grows in 16 MiB
# steps (top_pad). Measured with bench/fork_cpu.py --lang r --reps 2: 23.9, 24.9 -> 20.5, 20.7 ms
# of CPU per program. glibc reads them at start-up; the server's first line removes the variable,
# so programs and what they start do not see it (Sys.getenv, system()).
_MALLOC_TUNABLES = ("glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=67108864:"
                    "glibc.malloc.trim_threshold=1073741824:glibc.malloc.top_pad=16777216")

# The server's cons-cell (node) trigger for garbage collection. A fresh R starts with about 270k
# nodes in use and collects at about 660k; the server, with base's functions forced, uses more
# and its trigger sits close above that, so every forked program collected almost at once, and
# R's full collections mark every node of the inherited heap: a copy-on-write fault per page.
# A trigger of 2M nodes (112 MB; R's vector trigger is 64 MB either way) gives programs more room
# than a fresh R has before their first collection. Measured with bench/fork_cpu.py --lang r
# --reps 2: 20.3 -> 12.2-13.2 ms of CPU per program. A program that allocates past the trigger
# collects as any R does; one near the 2 GiB address-space limit may have up to that much more
# garbage uncollected than in a fresh R.
_MIN_NSIZE = "2M"

# The pre-loaded runtime (fork_server). Base R's functions are lazy-loaded (a promise per name,
# read and unserialized from base.rdb when first used, again in every program): the second line
# forces them all once (measured: a reference program's own CPU time from about 32 to 20 ms),
# and those of the byte compiler's namespace, which R loads at start-up for its JIT (about 1 ms
# a program); it loads no namespace. Both statements on the last line: after it, R reads the
# program as the rest of its console input. In the program, the session's temp folder (made at
# start-up in the server's /tmp) is made again in the program's fresh /tmp. The very first line
# removes GLIBC_TUNABLES (_MALLOC_TUNABLES) from the environment. Before serving, every object the
# server holds is marked not mutable (multiplt_r_freeze in _GLUE), from base's symbols (listed
# before base is forced: made later, before the heap's top was aligned, the list changed which
# of the server's pages programs write)
# and the global environment, which is then as empty as a fresh R's.
_SERVER = """invisible(Sys.unsetenv("GLIBC_TUNABLES"))
.multiplt_roots <- lapply(ls(baseenv(), all.names = TRUE), as.name)
invisible(lapply(c("base", "compiler"), function(ns) {{ e <- asNamespace(ns); for (n in ls(e, all.names = TRUE)) get(n, envir = e) }}))
invisible(dyn.load({library}))
invisible(.Call("multiplt_r_freeze", .multiplt_roots)); rm(.multiplt_roots)
if (.C("multiplt_r_serve", 3L, {script}, result = 0L)$result == 0L) invisible(tempdir(check = TRUE)) else quit(save = "no", status = 1)
"""

# R's glue (fork_server), appended to init.c's source. At its end a program's R removes the
# session's temp folder as every R does (R_CleanTempDir), but by `R_system("rm -Rf DIR")`: a
# `sh` and an `rm` started per program, about a fifth of an empty program's CPU here. In the
# program, the call libR makes to R_system through its own procedure linkage table (its GOT
# slot) is pointed at remove_temp_dir, which removes exactly that folder in-process (the same
# files gone, nothing printed) and hands every other command, or a removal that fails (then rm
# prints its own messages as in a fresh R), to R's R_system unchanged.
_GLUE = r"""
#include <dlfcn.h>
#include <elf.h>
#include <stddef.h>
#include <stdint.h>
#include <ftw.h>
#include <link.h>

extern char *R_TempDir;
extern void (*ptr_R_CleanUp)(int, int, int);  /* Rinterface.h: R_CleanUp's implementation */
static void (*r_clean_up)(int, int, int);
static int (*r_system)(const char *);
static int quitting;

static void clean_up(int save, int status, int run_last) {
    quitting = 1;
    r_clean_up(save, status, run_last);
}

/* The `rm` that `sh -c` would run: the first executable regular file named rm on PATH. */
static int which_rm(struct stat *found) {
    const char *path = getenv("PATH");
    char dir[4096], file[4200];
    while (path && *path) {
        size_t n = strcspn(path, ":");
        if (n > 0 && n < sizeof dir) {
            memcpy(dir, path, n);
            dir[n] = 0;
            snprintf(file, sizeof file, "%s/rm", dir);
            if (stat(file, found) == 0 && S_ISREG(found->st_mode) && access(file, X_OK) == 0) return 0;
        }
        path += n + (path[n] == ':');
    }
    return -1;
}

static struct stat system_rm;  /* found in the server, where PATH is the programs' own */
static int system_rm_known;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

/* In-process only where `sh -c 'rm -Rf DIR'` would run the system's rm on exactly DIR and
 * succeed silently: R is quitting (R_CleanUp), the command is R_CleanTempDir's, DIR has no character sh would interpret,
 * PATH still finds the same rm, and every entry is removed. Else R's R_system runs it. */
static int remove_temp_dir(const char *cmd) {
    char expected[4200];
    struct stat rm;
    if (quitting && R_TempDir && system_rm_known && strspn(R_TempDir, "abcdefghijklmnopqrstuvwxyz"
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-") == strlen(R_TempDir) &&
        snprintf(expected, sizeof expected, "rm -Rf %s", R_TempDir) < (int)sizeof expected &&
        strcmp(cmd, expected) == 0 && which_rm(&rm) == 0 && rm.st_dev == system_rm.st_dev &&
        rm.st_ino == system_rm.st_ino && nftw(R_TempDir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0)
        return 0;
    return r_system(cmd);
}

/* libR's GOT slot for R_system (a JUMP_SLOT relocation of libR.so), or NULL. */
static int find_slot(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    if (!strstr(info->dlpi_name, "/libR.so")) return 0;
    ElfW(Addr) base = info->dlpi_addr, jmprel = 0, symtab = 0, strtab = 0, pltrelsz = 0;
    ElfW(Addr) relro = 0, relro_size = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        if (info->dlpi_phdr[i].p_type == PT_GNU_RELRO) {
            relro = base + info->dlpi_phdr[i].p_vaddr;
            relro_size = info->dlpi_phdr[i].p_memsz;
        }
        if (info->dlpi_phdr[i].p_type != PT_DYNAMIC) continue;
        for (ElfW(Dyn) *d = (ElfW(Dyn) *)(base + info->dlpi_phdr[i].p_vaddr); d->d_tag != DT_NULL; d++) {
            /* the loader relocated these in place on most targets; not on all */
            ElfW(Addr) at = d->d_un.d_ptr < base ? base + d->d_un.d_ptr : d->d_un.d_ptr;
            if (d->d_tag == DT_JMPREL) jmprel = at;
            else if (d->d_tag == DT_SYMTAB) symtab = at;
            else if (d->d_tag == DT_STRTAB) strtab = at;
            else if (d->d_tag == DT_PLTRELSZ) pltrelsz = d->d_un.d_val;
        }
    }
    if (!jmprel || !symtab || !strtab) return 1;
    for (ElfW(Rela) *r = (ElfW(Rela) *)jmprel; (ElfW(Addr))r < jmprel + pltrelsz; r++) {
        const ElfW(Sym) *sym = (const ElfW(Sym) *)symtab + ELF64_R_SYM(r->r_info);
        ElfW(Addr) slot = base + r->r_offset;
        if (strcmp((const char *)strtab + sym->st_name, "R_system") != 0) continue;
        if (slot >= relro && slot < relro + relro_size) {  /* bound at load, then read-only */
            long page = sysconf(_SC_PAGESIZE);
            if (mprotect((void *)(slot & ~(ElfW(Addr))(page - 1)), page, PROT_READ | PROT_WRITE))
                break;  /* not redirected: R runs rm as usual */
        }
        *(void ***)data = (void **)slot;
        break;
    }
    return 1;
}

/* The server's objects marked not mutable (R's MARK_NOT_MUTABLE: reference count at its
 * maximum, where it stays). A forked program's R counts references on everything it touches:
 * every symbol it matches an argument to, every string and constant it stores in a new list
 * raises the count in that object's header, a write to the server's page and so a copy of the
 * page (about half of a program's copy-on-write faults, measured with perf). At the maximum R
 * neither raises nor lowers a count: such objects are copied before any change, as R treats
 * every object it cannot prove unshared, so values behave the same. Walked from base's symbols
 * (`roots`), the global and base environments and the namespace registry, through every
 * reference an object holds; returns the number of objects marked. */
typedef struct SEXPREC *SEXP;
extern SEXP R_NilValue, R_GlobalEnv, R_BaseEnv, R_BaseNamespace, R_NamespaceRegistry;
extern int TYPEOF(SEXP), ALTREP(SEXP);
extern SEXP ATTRIB(SEXP), CAR(SEXP), CDR(SEXP), TAG(SEXP), FORMALS(SEXP), BODY(SEXP),
    CLOENV(SEXP), PRINTNAME(SEXP), SYMVALUE(SEXP), INTERNAL(SEXP), FRAME(SEXP), ENCLOS(SEXP),
    HASHTAB(SEXP), PRCODE(SEXP), PRENV(SEXP), PRVALUE(SEXP), VECTOR_ELT(SEXP, ptrdiff_t),
    STRING_ELT(SEXP, ptrdiff_t), R_ExternalPtrTag(SEXP), R_ExternalPtrProtected(SEXP),
    Rf_ScalarInteger(int);
extern ptrdiff_t XLENGTH(SEXP);
extern void MARK_NOT_MUTABLE(SEXP);

struct walk { SEXP *seen; size_t cap, used; SEXP *todo; size_t todo_cap, todo_n; int failed; };

static void *walk_alloc(size_t bytes) {  /* off malloc's heap: nothing left for programs to reuse */
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* x's slot in the open-addressing set `seen` of `cap` (a power of 2): where it is, or the
 * empty slot where it goes. */
static SEXP *walk_slot(SEXP *seen, size_t cap, SEXP x) {
    size_t h = ((uintptr_t)x >> 4) * 0x9E3779B97F4A7C15ull & (cap - 1);
    while (seen[h] && seen[h] != x) h = (h + 1) & (cap - 1);
    return &seen[h];
}

static int walk_insert(struct walk *w, SEXP x) {  /* 1 if x is new */
    if (2 * (w->used + 1) > w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 1 << 20;
        SEXP *seen = walk_alloc(cap * sizeof *seen);
        if (!seen) { w->failed = 1; return 0; }
        for (size_t i = 0; i < w->cap; i++)
            if (w->seen[i]) *walk_slot(seen, cap, w->seen[i]) = w->seen[i];
        if (w->seen) munmap(w->seen, w->cap * sizeof *seen);
        w->seen = seen;
        w->cap = cap;
    }
    SEXP *slot = walk_slot(w->seen, w->cap, x);
    if (*slot) return 0;
    *slot = x;
    w->used++;
    return 1;
}

static void walk_push(struct walk *w, SEXP x) {
    if (w->failed || x == NULL || x == R_NilValue || !walk_insert(w, x)) return;
    if (w->todo_n == w->todo_cap) {
        size_t cap = w->todo_cap ? 2 * w->todo_cap : 1 << 16;
        SEXP *todo = w->todo ? mremap(w->todo, w->todo_cap * sizeof *todo, cap * sizeof *todo,
                                      MREMAP_MAYMOVE) : walk_alloc(cap * sizeof *todo);
        if (todo == MAP_FAILED || !todo) { w->failed = 1; return; }
        w->todo = todo;
        w->todo_cap = cap;
    }
    w->todo[w->todo_n++] = x;
}

/* A cell's CAR, CDR and TAG (a cons cell; byte code; an ALTREP object's data and class). Not
 * the CAR of a cell that holds an immediate binding (an unboxed value, not an object: R's own
 * CAR refuses those cells, flagged in the header's last 16 bits). */
static void walk_cell(struct walk *w, SEXP x) {
    if (!*(const uint16_t *)((const char *)x + 6)) walk_push(w, CAR(x));
    walk_push(w, CDR(x));
    walk_push(w, TAG(x));
}

SEXP multiplt_r_freeze(SEXP roots) {
    struct walk w = {0};
    walk_push(&w, roots);
    walk_push(&w, R_GlobalEnv);
    walk_push(&w, R_BaseEnv);
    walk_push(&w, R_BaseNamespace);
    walk_push(&w, R_NamespaceRegistry);
    int marked = 0;
    while (w.todo_n && !w.failed) {
        SEXP x = w.todo[--w.todo_n];
        MARK_NOT_MUTABLE(x);
        marked++;
        walk_push(&w, ATTRIB(x));
        if (ALTREP(x)) {  /* its data and class, never its elements (no method runs) */
            walk_cell(&w, x);
            continue;
        }
        switch (TYPEOF(x)) {
        case 1:  /* SYMSXP */
            walk_push(&w, PRINTNAME(x)); walk_push(&w, SYMVALUE(x)); walk_push(&w, INTERNAL(x));
            break;
        case 2: case 6: case 17:  /* LISTSXP LANGSXP DOTSXP */
        case 21:                  /* BCODESXP: code, constants */
            walk_cell(&w, x);
            break;
        case 3:  /* CLOSXP */
            walk_push(&w, FORMALS(x)); walk_push(&w, BODY(x)); walk_push(&w, CLOENV(x));
            break;
        case 4:  /* ENVSXP */
            walk_push(&w, FRAME(x)); walk_push(&w, ENCLOS(x)); walk_push(&w, HASHTAB(x));
            break;
        case 5:  /* PROMSXP */
            walk_push(&w, PRVALUE(x)); walk_push(&w, PRCODE(x)); walk_push(&w, PRENV(x));
            break;
        case 16: case 19: case 20: {  /* STRSXP VECSXP EXPRSXP */
            ptrdiff_t n = XLENGTH(x);
            for (ptrdiff_t i = 0; i < n; i++)
                walk_push(&w, TYPEOF(x) == 16 ? STRING_ELT(x, i) : VECTOR_ELT(x, i));
            break;
        }
        case 22:  /* EXTPTRSXP */
            walk_push(&w, R_ExternalPtrProtected(x)); walk_push(&w, R_ExternalPtrTag(x));
            break;
        }
    }
    if (w.seen) munmap(w.seen, w.cap * sizeof *w.seen);
    if (w.todo) munmap(w.todo, w.todo_cap * sizeof *w.todo);
    return Rf_ScalarInteger(w.failed ? -marked : marked);
}

/* The heap's top chunk (where glibc's malloc carves new memory once its free lists are empty,
 * as they almost are in the server) moved by a block the server keeps, so that the top's
 * header ends at a 2 MiB boundary. The server has written the huge page that holds the top, so
 * a program's first new memory there was a copy-on-write fault per 4 KiB page (and a split of
 * that huge page); above the boundary it is one fresh huge page per 2 MiB. mallinfo2's keepcost
 * is the top chunk's size, and that chunk ends at the break. A block that did not come from the
 * top (a free chunk fitted, or consolidating small free chunks moved the top) is given back and
 * the alignment tried once more. */
static int top_offset = -1;  /* in a program: where the top's header ended at the fork, in its
                              * 2 MiB (0: aligned); -1 without glibc's mallinfo2 (for the tests) */
void multiplt_r_heap_top(int *offset) { *offset = top_offset; }
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
#include <malloc.h>
#define HUGE_PAGE ((uintptr_t)2 << 20)
static uintptr_t heap_top(void) {
    struct mallinfo2 mi = mallinfo2();
    return (uintptr_t)sbrk(0) - mi.keepcost;
}
static void align_heap_top(void) {
    for (int attempt = 0; attempt < 2; attempt++) {
        uintptr_t top = heap_top();
        uintptr_t boundary = (top + 64 + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
        size_t size = boundary - 2 * sizeof(size_t) - top;  /* the block's chunk, header included */
        if ((uintptr_t)sbrk(0) - top < size + 4096) return;  /* the top chunk is too small */
        void *block = malloc(size - sizeof(size_t));        /* a chunk of exactly `size` bytes */
        if (block && (uintptr_t)block == top + 2 * sizeof(size_t)) return;
        free(block);
    }
}
static void record_heap_top(void) {
    top_offset = (int)((heap_top() + 2 * sizeof(size_t)) & (HUGE_PAGE - 1));
}
#else
static void align_heap_top(void) {}
static void record_heap_top(void) {}
#endif

/* The test harness runs without byte-compiling it. R's JIT compiles a closure of the global
 * environment before its first call when its body is large (smaller ones at their second call):
 * a test harness (HARNESS, render_test_file) with more than a few asserts is, a function called
 * once, and its compilation (the compiler is R code) was about 5 ms of a reference program's
 * 11 ms of CPU here. A task callback (R runs it after each top-level expression of the program)
 * marks the harness closure, once defined, as one not to compile (NOJIT, the flag R sets on
 * closures it decides not to compile) and then removes itself. It allocates nothing (the
 * symbol is installed in the server) and runs no R code: a binding of that name that is active
 * (a function R would call to read it) ends the callback untouched. What the harness calls is
 * compiled as under Rscript; docs/execution.md says what differs. R's own prototypes take and
 * return Rboolean, an enum passed as an int. SET_NOJIT is exported by libR, not declared in its
 * public headers. */
extern SEXP Rf_install(const char *), Rf_findVarInFrame3(SEXP, SEXP, int);
extern int R_existsVarInFrame(SEXP, SEXP), R_BindingIsActive(SEXP, SEXP);
extern void SET_NOJIT(SEXP);
extern void *Rf_addTaskCallback(int (*)(SEXP, SEXP, int, int, void *), void *, void (*)(void *),
                                const char *, int *);
static SEXP harness;  /* the symbol HARNESS (symbols are never collected) */

static int harness_not_compiled(SEXP expr, SEXP value, int ok, int visible, void *data) {
    (void)expr; (void)value; (void)ok; (void)visible; (void)data;
    if (!R_existsVarInFrame(R_GlobalEnv, harness)) return 1;  /* not yet: keep looking */
    if (R_BindingIsActive(harness, R_GlobalEnv)) return 0;     /* not a plain harness: done */
    SEXP f = Rf_findVarInFrame3(R_GlobalEnv, harness, 0);
    if (TYPEOF(f) != 3 /* CLOSXP */) return 1;
    if (TYPEOF(BODY(f)) != 21 /* BCODESXP */) SET_NOJIT(f);
    return 0;                                                  /* done: R removes it */
}

/* multiplt_serve_console_ptr, and in each program the redirection above (the slot and
 * R_system are looked up once, in the server); the heap's top is aligned last, when the server
 * allocates nothing more. */
void multiplt_r_serve(int *control_fd, char **script, int *result) {
    system_rm_known = which_rm(&system_rm) == 0;
    void **slot = NULL;
    dl_iterate_phdr(find_slot, &slot);
    r_system = (int (*)(const char *))dlsym(RTLD_DEFAULT, "R_system");
    harness = Rf_install(HARNESS);
    multiplt_share_init();
    align_heap_top();
    multiplt_serve_console_ptr(control_fd, script, result);
    if (*result != 0) return;
    record_heap_top();
    Rf_addTaskCallback(harness_not_compiled, NULL, NULL, "multiplt", NULL);
    if (slot && r_system && ptr_R_CleanUp) {
        r_clean_up = ptr_R_CleanUp;
        ptr_R_CleanUp = clean_up;
        *slot = (void *)remove_temp_dir;
    }
}
"""
