/* The per-program init of a warm sandbox (see zygote.py), in C so that starting a program costs
 * a few small processes instead of a copy of a Python interpreter.
 *
 *   init TMP_SIZE SHM_SIZE ADDRESS_SPACE PROCESSES OPEN_FILES LIB LIB_MOUNT NAME COMMAND [ARG...]
 *
 * Started by the supervisor with: fd 0 = the program's text (read to its end), fd 1 and 2 = the
 * program's stdout and stderr, fd 3 = the status pipe, the program's environment as its own.
 * LIB is "" for none. It enters new mount and IPC namespaces, then forks the namespace's pid 1,
 * which mounts a fresh tmpfs at /tmp holding the program file (and LIB read-only at LIB_MOUNT),
 * another at /dev/shm, a fresh /proc, sets the limits and runs the program as pid 2 in its own
 * session, stdin /dev/null. Status lines on fd 3: "P <pid 1's pid here>" (at any point: its
 * writer races pid 1), "E <message>" when the platform failed before the program started, else
 * "N <pid namespace inode>" right before the program starts and "S <wait status>" once it has
 * exited ("S -errno" where pid 1 itself failed after "N": no fork, no wait): the program exists
 * only after "N", so whatever follows "N" other than one "S" line is not ours (zygote.py).
 * pid 1 is not dumpable (PR_SET_DUMPABLE 0, from the start): the program, of the same uid and
 * without capabilities, can neither trace it, nor open its /proc/1/mem or /proc/1/fd/3 (the
 * status pipe), nor take its descriptors; in shared-init mode its memory is the server's.
 * Killing pid 1 kills everything the program started, and this process exits once they are all
 * gone (a pid 1 is reaped only after the rest of its namespace); killing this process kills pid 1
 * as well (parent-death signal).
 * Fork-server mode (compiled with -DMULTIPLT_FORK_SERVER -shared, see forkserver.py): the same
 * steps run in a fork of a language runtime that has already loaded itself and its test library.
 * The runtime calls multiplt_serve(CONTROL_FD) through its FFI; it returns only in a program
 * (0, /tmp/NAME is the program, multiplt_program() names it) or at the end of the requests (-1).
 * Each request on CONTROL_FD (a SOCK_SEQPACKET socket) carries the argv above as NUL-separated
 * strings (COMMAND is ignored) and 4 descriptors: program text, stdout, stderr, status. The server
 * sends "R" once ready, then per request clones pid 1 into new namespaces itself (instead of a
 * helper that unshares) and waits for it; pid 1 does exactly what it does here, except that pid 2
 * is a fork of pid 1 that returns into the runtime instead of an exec; the server keeps nothing
 * of it. Capabilities: this helper (or the server) gets the sandbox's from the supervisor as
 * ambient ones (it mounts and unshares); pid 1 empties every set before the program starts, and
 * the program runs as a non-root uid, so it execs with none.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define STATUS_FD 3

static void status(const char *fmt, ...) {
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (n > (int)sizeof line - 2) n = sizeof line - 2;
    line[n++] = '\n';
    ssize_t ignored = write(STATUS_FD, line, n);
    (void)ignored;
}

static void fail(const char *what) {
    status("E %s: %s", what, strerror(errno));
    _exit(1);
}

/* After "N" only an "S" line is ours: the platform's own failure there (no fork of the program,
 * no wait) is a negative status, -errno, that no program's wait status can be. */
static void lost(void) {
    status("S %d", -(errno ? errno : EIO));
    _exit(1);
}

/* Nothing this process execs may hold or gain a capability: ambient, bounding, inheritable,
 * permitted and effective sets all empty (the sandbox also has no_new_privs set). */
static void drop_capabilities(void) {
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) fail("clear ambient caps");
    for (int cap = 0; prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0; cap++) {}
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &header, data) != 0) fail("capset");
    if (prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN, 0, 0, 0) != 0) {
        errno = EPERM;
        fail("drop the bounding set");
    }
}

static void set_limit(int resource, const char *value) {
    rlim_t v = strtoull(value, NULL, 10);
    struct rlimit lim = {v, v};
    if (setrlimit(resource, &lim) != 0) fail("setrlimit");
}

#ifdef MULTIPLT_FORK_SERVER
#include <setjmp.h>
static char program_path[4096];
static int shared_init;         /* multiplt_share_init() */
static jmp_buf program_start;   /* in the server's multiplt_serve, where a program continues */
static sigset_t program_mask;   /* the server's signal mask, the program's */
#endif

/* Runs in this helper (after fd 0..3 are set), or with `as_init` in a pid 1 that a server
 * cloned into new namespaces already: never returns, except in the program when forked from a
 * server (MULTIPLT_FORK_SERVER), where it returns once pid 2 may run the program. */
static void enter(int argc, char **argv, int as_init) {
    if (argc < 10) {
        status("E usage: init TMP_SIZE SHM_SIZE AS NPROC NOFILE LIB LIB_MOUNT NAME COMMAND "
               "[ARG...]");
        _exit(2);
    }
    const char *tmp_size = argv[1], *shm_size = argv[2], *as = argv[3], *nproc = argv[4];
    const char *nofile = argv[5], *lib = argv[6], *lib_mount = argv[7], *name = argv[8];
    char **command = argv + 9;
    (void)command;
    /* Before anything of the program exists: nothing of the same uid may trace this process or
     * reach its memory and descriptors (/proc/PID/mem, /proc/PID/fd, process_vm_*, pidfd_getfd).
     * Its forks inherit it (the program restores it in its own copy, below; an exec resets it). */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) fail("prctl(PR_SET_DUMPABLE)");
    /* The program's text, read before anything else happens. In pages of its own, not from
     * malloc: in a fork of a runtime, a malloc this size first consolidates the runtime's free
     * chunks, which copies (copy-on-write) pages of its heap for nothing. */
    size_t size = 0, cap = 1 << 16;
    char *text = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (text == MAP_FAILED) fail("mmap");
    for (;;) {
        if (size == cap) {
            text = mremap(text, cap, cap * 2, MREMAP_MAYMOVE);
            if (text == MAP_FAILED) fail("mremap");
            cap *= 2;
        }
        ssize_t n = read(0, text + size, cap - size);
        if (n < 0) { if (errno == EINTR) continue; fail("read the program"); }
        if (n == 0) break;
        size += n;
    }
    /* New mount and IPC namespaces for this process, a new PID namespace for its next child. */
    if (!as_init && unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWPID) != 0) fail("unshare");
    /* Opened before the new /tmp hides it; a bind needs a source in this mount namespace. */
    int lib_fd = -1;
    if (*lib && (lib_fd = open(lib, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) fail("open the library");

    pid_t init = as_init ? 0 : fork();
    if (init < 0) fail("fork");
    if (init > 0) {  /* outside: wait for pid 1, then leave (its status went to fd 3) */
        status("P %d", (int)init);  /* at the deadline the supervisor kills it */
        int st;
        while (waitpid(init, &st, 0) < 0 && errno == EINTR) {}
        _exit(0);
    }

    /* pid 1 of the new PID namespace */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail("prctl");

    char opts[128];
    snprintf(opts, sizeof opts, "size=%s,mode=0700", tmp_size);
    if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, opts) != 0) fail("mount /tmp");
    snprintf(opts, sizeof opts, "size=%s,mode=0700", shm_size);
    if (mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, opts) != 0) fail("mount /dev/shm");
    if (lib_fd >= 0) {
        char source[64];
        snprintf(source, sizeof source, "/proc/self/fd/%d", lib_fd);
        if (mkdir(lib_mount, 0755) != 0) fail("mkdir the library mount");
        /* a bind of bubblewrap's read-only bind: read-only as well */
        if (mount(source, lib_mount, NULL, MS_BIND | MS_REC, NULL) != 0) fail("bind the library");
        close(lib_fd);
    }
    if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) fail("mount /proc");

    char path[4096];
    snprintf(path, sizeof path, "/tmp/%s", name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) fail("create the program file");
    for (size_t done = 0; done < size;) {
        ssize_t n = write(fd, text + done, size - done);
        if (n < 0) { if (errno == EINTR) continue; fail("write the program file"); }
        done += n;
    }
    close(fd);
    munmap(text, cap);
    if (chdir("/tmp") != 0) fail("chdir /tmp");
    drop_capabilities();
    set_limit(RLIMIT_AS, as);
    set_limit(RLIMIT_NPROC, nproc);
    set_limit(RLIMIT_NOFILE, nofile);
    set_limit(RLIMIT_CORE, "0");
    int null = open("/dev/null", O_RDONLY);
    if (null < 0) fail("open /dev/null");
    if (dup2(null, 0) < 0) fail("dup2");
    close(null);
#ifndef MULTIPLT_FORK_SERVER
    if (fcntl(STATUS_FD, F_SETFD, FD_CLOEXEC) != 0) fail("fcntl");  /* not the program's */
#endif
    /* The last line before the program exists (see the header). */
    struct stat ns;
    if (stat("/proc/self/ns/pid", &ns) != 0) fail("stat /proc/self/ns/pid");
    status("N %llu", (unsigned long long)ns.st_ino);

#ifdef MULTIPLT_FORK_SERVER
    snprintf(program_path, sizeof program_path, "%s", path);
    pid_t program = fork();
    if (program < 0) lost();
    if (program == 0) {
        setsid();
        close(STATUS_FD);  /* no exec closes it here */
        /* Dumpable again in its own copy, as after an exec: its /proc/self files are its own
         * (owned by its uid, not root) and its children may trace it, as in a fresh runtime. */
        prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
        if (shared_init) {  /* off pid 1's stack, back into the server's multiplt_serve */
            sigprocmask(SIG_SETMASK, &program_mask, NULL);
            longjmp(program_start, 1);
        }
        return;            /* into the runtime, which runs program_path */
    }
#else
    pid_t program = vfork();
    if (program < 0) lost();
    if (program == 0) {
        setsid();
        execvp(command[0], command);
        /* as bubblewrap: the command could not be executed */
        dprintf(2, "sandbox: cannot execute %s: %s\n", command[0], strerror(errno));
        _exit(127);
    }
#endif
    close(1);
    close(2);
    for (;;) {  /* as init: reap orphans too, until the program is done */
        int st;
        pid_t pid = waitpid(-1, &st, 0);
        if (pid < 0) {
            if (errno == EINTR) continue;
            lost();
        }
        if (pid == program) {
            status("S %d", st);
            _exit(0);  /* the kernel now kills whatever the program left in this namespace */
        }
    }
}

#ifndef MULTIPLT_FORK_SERVER
int main(int argc, char **argv) {
    enter(argc, argv, 0);
    return 0;
}
#else
#include <sys/socket.h>

#define MAX_REQUEST 16384
#define INIT_STACK (256 << 10)

/* Shared-init mode, for runtimes that opt in (their glue calls multiplt_share_init before
 * multiplt_serve): pid 1 is cloned with CLONE_VM | CLONE_VFORK, so it runs on the server's
 * memory (a stack of its own) while the server is suspended in clone until pid 1 has exited,
 * instead of on a copy of it: the runtime's page tables are copied once per program (the
 * program's fork) instead of twice, and torn down once. pid 1 keeps every signal blocked (no
 * handler of the runtime ever runs in it, so it writes nothing of the runtime's state), writes
 * its own "P" line (its pid as the server sees it, stored by the kernel before it runs), and
 * its fork of the program is glibc's as before; the program unblocks the server's signal mask
 * and continues where the server called clone (longjmp), in its own copy of the memory. */
struct init_request { int argc; char **argv; int *fds; int control_fd; };
static volatile pid_t shared_init_pid;
static char *init_stack;

void multiplt_share_init(void) { shared_init = 1; }

static int init_main(void *arg) {
    struct init_request *r = arg;
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    close(r->control_fd);
    if (dup2(r->fds[3], STATUS_FD) < 0 || dup2(r->fds[0], 0) < 0 || dup2(r->fds[1], 1) < 0 ||
        dup2(r->fds[2], 2) < 0) _exit(1);
    for (int i = 0; i < 4; i++) close(r->fds[i]);
    status("P %d", (int)shared_init_pid);  /* at the deadline the supervisor kills it */
    enter(r->argc, r->argv, 1);  /* the program longjmps out of it; pid 1 exits in it */
    _exit(1);
}

const char *multiplt_program(void) { return program_path; }

/* The server loop; see the header. Returns 0 in a program, -1 when the requests end (or the
 * control socket fails). The server runs no program code itself: each request is a fork. */
int multiplt_serve(int control_fd) {
    /* Not dumpable, as each pid 1 (shared-init mode: pid 1 runs on this very memory) */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return -1;
    if (send(control_fd, "R", 1, MSG_NOSIGNAL) != 1) return -1;  /* loaded: ready for requests */
    for (;;) {
        char data[MAX_REQUEST];
        char cbuf[CMSG_SPACE(4 * sizeof(int))];
        struct iovec iov = {data, sizeof data - 1};
        struct msghdr msg = {0};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf;
        msg.msg_controllen = sizeof cbuf;
        ssize_t n = recvmsg(control_fd, &msg, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        int fds[4], nfds = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                int count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (int i = 0; i < count; i++) {
                    int fd;
                    memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                    if (nfds < 4) fds[nfds++] = fd; else close(fd);
                }
            }
        }
        if (nfds != 4) {  /* not a request of ours: drop it */
            for (int i = 0; i < nfds; i++) close(fds[i]);
            continue;
        }
        data[n] = 0;
        char *argv[64];
        int argc = 0;
        argv[argc++] = "multiplt-fork";
        for (char *p = data; p < data + n && argc < 63; p += strlen(p) + 1) argv[argc++] = p;
        argv[argc] = NULL;
        /* pid 1 straight from the server, in new mount, IPC and PID namespaces: one copy of the
         * runtime fewer than a helper that unshares and forks it. A raw clone (fork semantics):
         * glibc's fork cannot add namespaces. pid 1 runs no runtime code, and its own fork of
         * the program is glibc's, so the program's thread bookkeeping is right. */
        pid_t init;
        if (shared_init) {
            if (!init_stack) {
                init_stack = mmap(NULL, INIT_STACK, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
                if (init_stack == MAP_FAILED) init_stack = NULL;
            }
            if (init_stack) {
                struct init_request request = {argc, argv, fds, control_fd};
                sigprocmask(SIG_SETMASK, NULL, &program_mask);
                if (setjmp(program_start)) return 0;  /* in the program (pid 2) */
                init = clone(init_main, init_stack + INIT_STACK, CLONE_VM | CLONE_VFORK |
                             CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_PARENT_SETTID |
                             SIGCHLD, &request, &shared_init_pid);
                if (init < 0) dprintf(fds[3], "E clone: %s\n", strerror(errno));
                for (int i = 0; i < 3; i++) close(fds[i]);
                /* pid 1 has exited (CLONE_VFORK); reaped once its namespace is empty */
                while (init > 0 && waitpid(init, NULL, 0) < 0 && errno == EINTR) {}
                close(fds[3]);
                continue;
            }
        }
        init = (pid_t)syscall(SYS_clone, (unsigned long)(CLONE_NEWNS | CLONE_NEWIPC |
                                                          CLONE_NEWPID | SIGCHLD), 0, 0, 0, 0);
        if (init == 0) {
            close(control_fd);
            /* fds[i] >= 4: fds 0..3 are the server's own (0-2 and the control socket) */
            if (dup2(fds[3], STATUS_FD) < 0 || dup2(fds[0], 0) < 0 || dup2(fds[1], 1) < 0 ||
                dup2(fds[2], 2) < 0) _exit(1);
            for (int i = 0; i < 4; i++) close(fds[i]);
            enter(argc, argv, 1);
            return 0;  /* in the program (pid 2) */
        }
        if (init < 0) {
            dprintf(fds[3], "E clone: %s\n", strerror(errno));
        } else {
            dprintf(fds[3], "P %d\n", (int)init);  /* at the deadline the supervisor kills it */
        }
        for (int i = 0; i < 3; i++) close(fds[i]);
        /* As the helper did: the status pipe closes once pid 1 is reaped, which is once its
         * namespace is empty, so the supervisor answers only then. */
        while (init > 0 && waitpid(init, NULL, 0) < 0 && errno == EINTR) {}
        close(fds[3]);
    }
}

/* The same for FFIs that pass only pointers (R's .C). */
void multiplt_serve_ptr(int *control_fd, int *result) { *result = multiplt_serve(*control_fd); }

/* For a runtime that reads its script as its console (R --file): multiplt_serve, and in each
 * program the descriptor open on *script (found here, in the server, where its link in /proc
 * reads *script as given: an absolute path) reads the program file instead, from its start, so
 * the runtime's own read loop runs the program exactly as it would have run its file.
 * *result: as multiplt_serve's; -2 where no descriptor is open on *script. */
void multiplt_serve_console_ptr(int *control_fd, char **script, int *result) {
    char link[4096], fdpath[64];
    int console = -1;
    for (int fd = 0; fd < 1024 && console < 0; fd++) {
        snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(fdpath, link, sizeof link - 1);
        if (n < 0) continue;
        link[n] = 0;
        if (strcmp(link, *script) == 0) console = fd;
    }
    if (console < 0) {
        dprintf(2, "multiplt_serve_console_ptr: no descriptor is open on %s\n", *script);
        *result = -2;
        return;
    }
    *result = multiplt_serve(*control_fd);
    if (*result != 0) return;
    int program = open(program_path, O_RDONLY | O_CLOEXEC);
    if (program < 0 || dup3(program, console, 0) != console) {  /* not close-on-exec: as before */
        dprintf(2, "sandbox: cannot open the program: %s\n", strerror(errno));
        _exit(126);
    }
    close(program);
}
#endif
