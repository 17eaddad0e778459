"""Racket's pre-loaded runtime (RacketLanguage.fork_server): the server program and the small C
library preloaded into it.

Where a forked program's CPU went (measured, docs/execution.md): expanding its `#lang racket`
module was most of it, the same work a fresh `racket` does: every module expansion gets fresh
compile-time (phase 1) instances of `racket`'s and `rackunit`'s macro libraries (Racket's
separate-compilation guarantee), a few hundred module bodies run again per program. So the
server forks inside an expansion: it loads a template module at the programs' path itself, and
its marker macro, which runs once those instances exist, is where each program is forked; the
program puts its own module body in the marker's place and the expansion goes on (SERVER below;
43.6 -> 17.2 ms of CPU per program, bench/fork_cpu.py). The instances a program gets are as
fresh as a new `racket`'s: made for this one expansion, which has run only `#%module-begin`.

The rest is the memory cost of being a fork: every page a program writes is first a page fault
(a copy of the server's page, or a fresh one), about 4 us each here, and a program's expansion
and compilation allocate some 20-30 MB. So the server

- collects garbage once after loading racket and rackunit, with Chez's heap reserve at 0 for
  that collection, so empty memory goes back to the system and a program allocates in new
  memory of its own instead of copying the server's pages one by one; the warm-up expansion
  comes after it, so that what it caches (weakly held) is still there for the programs;
- grows its heap in 2 MiB-aligned chunks advised as huge pages (HUGE_PAGES, preloaded): where
  the kernel's transparent huge pages are enabled for `madvise` (the default of Debian's and most
  distributions' kernels), a program's new memory then faults in 2 MiB at a time, and the fork
  copies one page-table entry per 2 MiB of the server's heap instead of 512;
- lets programs allocate 64 MB between minor collections instead of Chez's 8 MB: a program's
  expansion keeps much of what it allocates live, and each early minor collection copied it.

None of this changes what a program computes or prints; it changes where its memory lies and
when it is collected (a program may use up to 56 MB more memory before its first collection,
under the same 2 GiB limit).
"""

from __future__ import annotations

import logging
import os
import subprocess

LOG = logging.getLogger("multiplt.execution")

#: the preloaded library's file name (built by native.build_source, cached like the init)
HUGE_PAGES_LIBRARY = "multiplt-racket-hugepages.so"

# Preloaded into the server (LD_PRELOAD, removed from its environment before any program):
# Chez Scheme gets its heap from mmap in chunks of about 2 MiB; this mmap aligns such private
# anonymous mappings (2 MiB or more, no address asked for) to 2 MiB and advises them as huge
# pages.
# Everything else, and any mapping that the wider reservation cannot get (the address-space
# limit), is passed to the kernel exactly as asked.
HUGE_PAGES = r"""
#define _GNU_SOURCE
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define HUGE_PAGE (2UL << 20)

static void *plain(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    if (addr != NULL || len < HUGE_PAGE || (flags & (MAP_ANONYMOUS | MAP_PRIVATE)) !=
        (MAP_ANONYMOUS | MAP_PRIVATE) || (flags & (MAP_FIXED | MAP_HUGETLB | MAP_GROWSDOWN)))
        return plain(addr, len, prot, flags, fd, off);
    size_t size = (len + 4095) & ~(size_t)4095;
    char *wide = plain(NULL, size + HUGE_PAGE, prot, flags, fd, off);
    if (wide == MAP_FAILED)
        return plain(addr, len, prot, flags, fd, off);
    char *start = (char *)(((uintptr_t)wide + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    if (start > wide) munmap(wide, start - wide);
    if (wide + HUGE_PAGE > start) munmap(start + size, wide + HUGE_PAGE - start);
    madvise(start, size, MADV_HUGEPAGE);
    return start;
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
    __attribute__((alias("mmap")));  /* the same call under its large-file name */
"""

# The pre-loaded runtime. Before serving, it loads racket and rackunit and declares (and so
# expands) a test program of its own, which it never runs, collects garbage and sets the memory
# settings above. In each program it does what `racket FILE` does (run-program below), with the
# same top-level namespace (empty), command-line arguments (none) and run file (FILE).
#
# The fork point (see the module docstring): the server starts that work itself, on a template
# file at the programs' path (PROGRAM, in the server's own /tmp), and forks inside the template's
# expansion, where `#%module-begin` has run and the compile-time instances every expansion of a
# `#lang racket` module needs exist. The program (in its own /tmp) continues that expansion with
# its own module body in place of the template's marker; anything that is not a plain
# `#lang racket` module at that path takes the unchanged way (aborts to `retry` and loads the file
# from scratch).
SERVER = """#lang racket/base
(require ffi/unsafe ffi/unsafe/vm racket/file racket/port)
;; The huge-pages library is preloaded for this process only, not for what programs run.
(environment-variables-set! (current-environment-variables) #"LD_PRELOAD" #f)
(define lib (ffi-lib (vector-ref (current-command-line-arguments) 0)))
(define template-path (string->path (vector-ref (current-command-line-arguments) 1)))
(define serve (get-ffi-obj "multiplt_serve" lib (_fun _int -> _int)))
(define program (get-ffi-obj "multiplt_program" lib (_fun -> _path)))
((get-ffi-obj "multiplt_share_init" lib (_fun -> _void)))  ; pid 1 on the server's memory (init.c)
(define-namespace-anchor here)
(define top (current-namespace))
(define failed (string->uninterned-symbol "failed"))
(define retry (make-continuation-prompt-tag 'retry))
(define WARM-UP "#lang racket
(define (add x y) (+ x y))
(require rackunit)
(define (test-humaneval)
  (let ((candidate add))
    (check-within (candidate 2 3) 5 0.001)
    (check-equal? (candidate 2 3) 6)))
(test-humaneval)
")
(define TEMPLATE "#lang racket\\n(require 'multiplt-fork)\\n(multiplt-fork-point)\\n")
;; As `racket FILE`: the module's configure-runtime submodule, the module, its main submodule,
;; each under a prompt of its own (an error that escapes one stops there: exit status 1, else 0),
;; then `exit`; all in one new thread, so that what a step sets (a parameter, `exit-handler`)
;; holds for the next steps and the final `exit`, as in racket's main thread. Built from a datum
;; with no named procedure on the way: an error's printed context holds no frame of ours. With
;; the fork point the server itself starts this, and the steps run again from the start in a
;; program that aborts to `retry`.
(define run-program
  (parameterize ([current-namespace (namespace-anchor->empty-namespace here)])
    (namespace-require 'racket/base)
    (eval '(lambda (failed path retry)
             (thread-wait
              (thread
               (lambda ()
                 (let* ([mod (list 'file (path->string path))]
                        [cfg (list 'submod mod 'configure-runtime)]
                        [main (list 'submod mod 'main)]
                        [attempt (lambda (proc . args)
                                   (call-with-continuation-prompt (lambda () (apply proc args))
                                                                  (default-continuation-prompt-tag)
                                                                  (lambda _ failed)))]
                        [steps  ; (car (list ..)): no inferred name, no frame in a context
                         (car (list (lambda ()
                           (let ([has-cfg (attempt module-declared? cfg #t)])
                             (exit (if (and (not (eq? has-cfg failed))
                                            (or (not has-cfg)
                                                (not (eq? failed (attempt dynamic-require cfg #f))))
                                            (not (eq? failed (attempt namespace-require mod)))
                                            (or (not (module-declared? main #t))
                                                (not (eq? failed (attempt dynamic-require main #f)))))
                                       0
                                       1))))))])
                   (call-with-continuation-prompt steps retry steps)))))))))
;; One program's worth of work done here once: racket and rackunit loaded, the `#lang racket`
;; reader, and what expanding a test program needs of them. All in a namespace of its own that
;; shares the module registry: the top-level namespace that programs see as `current-namespace`
;; stays empty, as a fresh `racket FILE`'s is (an `eval` there fails alike).
(define warm-up (namespace-anchor->empty-namespace here))
(parameterize ([current-namespace warm-up])
  (namespace-require 'racket)
  (namespace-require 'rackunit))
;; Memory (see racket_server.py): one major collection that returns empty memory to the system,
;; then the warm-up expansion (after it: what it leaves, caches included, is still there for the
;; programs), then a larger allocation budget between the programs' minor collections.
(vm-eval '(heap-reserve-ratio 0.0))
(collect-garbage)
(vm-eval '(heap-reserve-ratio 1.0))
(parameterize ([current-namespace warm-up]
               [current-module-declare-name (make-resolved-module-path 'multiplt-warm-up)]
               [read-accept-reader #t]
               [read-accept-lang #t]
               [current-output-port (open-output-nowhere)]
               [current-error-port (open-output-nowhere)])
  (eval (namespace-syntax-introduce (read-syntax 'warm-up (open-input-string WARM-UP)))))
(vm-eval '(collect-trip-bytes (* 64 1024 1024)))
;; A module file read as the default load handler reads it (`#lang` allowed, lines counted, in
;; the top-level namespace): its one form, or #f when something follows that form.
(define (read-module path)
  (parameterize ([current-namespace top] [read-accept-reader #t] [read-accept-lang #t])
    (call-with-input-file path
      (lambda (in)
        (port-count-lines! in)
        (let ([form (read-syntax path in)])
          (and (eof-object? (read-syntax path in)) form))))))
;; The program's module body (read-module) with the lexical context of the template's marker
;; `stx` (every scope the expansion has given a body form by now); #f for anything but
;; `(module NAME racket (#%module-begin form ...))`, and for a program that names the marker's
;; module or identifier (it would see them).
(define (program-body stx path name)
  (let* ([form (with-handlers ([(lambda (e) #t) (lambda (e) #f)])
                 (and (not (regexp-match? #rx"multiplt-fork" (file->bytes path)))
                      (read-module path)))]
         [parts (and (syntax? form) (syntax->list form))]
         [body (and parts (= (length parts) 4) (syntax->list (cadddr parts)))])
    (and body
         (pair? body)
         (eq? (syntax-e (car parts)) 'module)
         (eq? (syntax-e (cadr parts)) name)
         (eq? (syntax-e (caddr parts)) 'racket)
         (eq? (syntax-e (car body)) '#%module-begin)
         (let ([context (make-syntax-delta-introducer stx #f)])
           (datum->syntax #f (cons (context (datum->syntax #f 'begin) 'add)
                                   (map (lambda (f) (context f 'add)) (cdr body))))))))
;; The template's marker: in the server, serve (fork) until the requests end; in a program, its
;; own module body, or back to the start of the steps (`retry`), which then load its file.
;; In a program: its file, which is also (find-system-path 'run-file), as racket's -u sets it.
(define (program-path)
  (let ([path (program)])
    ((vm-primitive 'set-run-file!) path)
    path))
(define (run path)
  (parameterize ([current-command-line-arguments (vector)])
    (run-program failed path retry)))
(define ((fork-point name) stx)
  (unless (zero? (serve 3))
    (exit 0))
  (let ([path (program-path)])
    (or (and (equal? path template-path) (program-body stx path name))
        (abort-current-continuation retry))))
(define template-name
  (with-handlers ([exn:fail? (lambda (e) #f)])
    (call-with-output-file template-path (lambda (out) (write-string TEMPLATE out)) #:exists 'truncate)
    (syntax-e (cadr (syntax->list (read-module template-path))))))
(cond
  [template-name
   ((vm-eval '(lambda (f) (set-top-level-value! 'multiplt-fork-point f))) (fork-point template-name))
   (parameterize ([current-namespace warm-up])
     (eval '(module multiplt-fork racket/base
              (require rackunit (for-syntax racket/base ffi/unsafe/vm))
              (provide multiplt-fork-point)
              (define-syntax (multiplt-fork-point stx)
                ((vm-eval '(top-level-value 'multiplt-fork-point)) stx)))))
   (run template-path)]
  [(zero? (serve 3)) (run (program-path))]
  [else (exit 0)])
"""

#: where a program's file is, in its own /tmp (Sandbox.run writes it as program.rkt); the
#: server's template goes there too, in the server's /tmp
PROGRAM = "/tmp/program.rkt"


def argv(folder: str, library: str) -> list[str]:
    """The server's command line, its files written into `folder`. Without a C compiler the
    huge-pages library is left out (programs cost more CPU, nothing else changes)."""
    from multiplt.execution import native  # the execution side builds C the one way

    path = os.path.join(folder, "server.rkt")
    with open(path, "w", encoding="utf-8") as f:
        f.write(SERVER)
    os.chmod(path, 0o644)
    try:
        pages = native.build_source(folder, HUGE_PAGES_LIBRARY, HUGE_PAGES.encode(),
                                    [["-shared", "-fPIC"]])
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        LOG.info("rkt: the fork server runs without huge pages (%s)", exc)
        return ["racket", path, library, PROGRAM]
    return ["env", f"LD_PRELOAD={pages}", "racket", path, library, PROGRAM]
