"""What of the host's file system a sandboxed program sees.

bubblewrap binds the host's root read-only (language runtimes live in many places: /usr,
/usr/local, /opt/julia, /etc and Debian's alternatives symlinks), then covers with empty,
read-only tmpfs every place that holds user data or sockets. The covers matter most where the
executor is not root: uid 65534 exists only inside the sandbox's user namespace, so the kernel
checks a program's file access against the executor's own uid and supplementary groups (its home,
its credentials, a group-accessible `docker.sock`). As root, bubblewrap runs as uid 65534
(sandbox.py), and the covers hide what is readable by everyone (checkouts, data, sockets).

Covered:

- every top-level folder but the system's (SYSTEM below: /usr, /etc, /opt, /bin, /sbin, the /lib
  folders, /nix, /gnu; /dev, /proc and /tmp are the sandbox's own, /sys is the kernel's): so
  /home, /root, /run, /var (with /var/run, /var/lib, /var/tmp, /var/spool, /var/mail), /mnt,
  /media, /srv, /boot, and any folder of the machine's own (/work, /data, /stage ...); where a
  top-level symlink of another name (/home -> /usr/home) leads, as below; and every other
  top-level file (a secret, a socket bound there) gets /dev/null bound over it (bubblewrap's
  mounts allow no devices, so opening it is refused, and so is connecting to it);
- inside the folders left visible: the executor's home and current folder, the folders its
  environment names for user data (PLACES_FROM_ENV: AIRFLOW_HOME, HF_HOME, the XDG folders, a
  `multiplt stage run`'s root ...), the platform's own checkout (the folder above the `multiplt`
  package, where it holds a pyproject.toml) and its virtual environment (sys.prefix, where it is
  one); each where it is a folder, not inside SANDBOX_OWN, holding none of KEPT (/usr/lib,
  /usr/local/bin ...) nor a folder that a command on the sandbox's PATH links to, and (as root)
  reachable by uid 65534;
- the caller's `private` folders (the executor's input and output: other programs' completions
  and results), by the same rules, except that one that cannot be covered because it is `/`, a
  top-level system folder or holds the runtimes (`unhideable`) is an error, never left visible.

Bound back read-only at their own paths after the covers (later mounts win): what the sandbox's
caller binds (the batch's temp folder: the compiled init, the libraries, the fork servers), and
host folders the platform's own programs read, where they lie under a cover: EXPOSED_PACKAGES
(the testgen runner imports coverage.py from the executor's environment) and, where no python3
is on the sandbox's PATH, the installation of the interpreter a warm sandbox's supervisor then
runs on (warm.py). Unix sockets are reachable through any mount, read-only or not, so with /run,
/var and the homes covered no socket of the host is left where a program can see it
(tests/unit/execution/test_view.py looks everywhere but /proc and /sys); abstract sockets belong
to the network namespace, which is the sandbox's own.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os
import shutil
import stat
import sys

from multiplt.errors import MultipltError

#: top-level folders programs keep seeing (the rest of `/` is covered)
SYSTEM = frozenset({"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "opt", "nix",
                    "gnu", "dev", "proc", "sys", "tmp"})
#: the sandbox's own (/tmp, /dev, /proc) or the kernel's: nothing of the host's inside needs a cover
SANDBOX_OWN = ("/tmp", "/dev", "/proc", "/sys")
#: folders never covered as a whole (so neither is any folder that holds one): the runtimes'
KEPT = ("/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/lib", "/usr/lib32", "/usr/lib64",
        "/usr/libx32", "/usr/libexec", "/usr/share", "/usr/include", "/usr/local/lib",
        "/usr/local/share", "/usr/local/include", "/etc", "/opt")
#: environment variables that name folders of user data (each covered where it exists)
PLACES_FROM_ENV = ("HOME", "AIRFLOW_HOME", "HF_HOME", "HF_HUB_CACHE", "MULTIPLT_CACHE_DIR",
                   "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME",
                   "XDG_RUNTIME_DIR", "TMPDIR", "MULTIPLT_STAGE_ROOT")
#: Python packages of the executor's environment that the platform's own sandboxed programs
#: import by path (the testgen runner: coverage.py, from validate.coverage_path())
EXPOSED_PACKAGES = ("coverage",)
#: the size of each cover (empty, read-only once the binds under it are in place)
COVER_SIZE = 4096


@dataclasses.dataclass(frozen=True)
class View:
    """The covers: folders (`hidden`, an empty tmpfs each) and top-level files of other kinds
    (`blanked`, /dev/null bound over each: a socket there can no longer be connected to); and
    the host folders bound back read-only (`exposed`)."""

    hidden: tuple[str, ...] = ()
    exposed: tuple[str, ...] = ()
    blanked: tuple[str, ...] = ()

    def args(self, binds: list[str] | tuple[str, ...] = ()) -> list[str]:
        """bubblewrap's arguments, after the root, /dev, /proc and /tmp: the covers, `binds` (the
        caller's), the exposed folders, then the covers made read-only (bubblewrap creates the
        mount points of the binds inside a cover, so that has to come last)."""
        argv: list[str] = []
        for path in self.hidden:
            argv += ["--perms", "0755", "--size", str(COVER_SIZE), "--tmpfs", path]
        for path in self.blanked:
            argv += ["--ro-bind", "/dev/null", path]
        argv += list(binds)
        for path in self.exposed:
            argv += ["--ro-bind", path, path]
        for path in self.hidden:
            argv += ["--remount-ro", path]
        return argv


def current(for_nobody: bool, private: tuple[str, ...] | list[str] = ()) -> View:
    """The view for this process now. `for_nobody`: bubblewrap will run as uid 65534 (the executor
    is root), so a place deeper than `/` that this uid cannot reach needs no cover (and gets none:
    bubblewrap could not mount there), nor can it be bound back. `private`: folders programs must
    not see (the executor's input and output), covered wherever they are; MultipltError for one
    that cannot be (`unhideable`)."""
    reachable = reachable_by_nobody if for_nobody else os.path.isdir
    for path in private:
        why = unhideable(path)
        if why:
            raise MultipltError(f"programs must not see {path}, but the sandbox cannot hide it: "
                                f"{why}; use a folder of its own")
    folders, files, links = _top_level()
    hidden = folders  # bubblewrap mounts on each: it needs to enter only `/`
    for path in links + _candidates() + [os.path.realpath(p) for p in private]:
        if (path != "/" and os.path.isdir(path) and reachable(path)
                and not _within(path, hidden) and not _within(path, SANDBOX_OWN)
                and not _holds_runtimes(path)):
            hidden = [h for h in hidden if not _within(h, (path,))] + [path]
    exposed: list[str] = []
    for path in _exposed_candidates():
        if (_within(path, hidden) and not _within(path, exposed) and os.path.isdir(path)
                and reachable(path)):
            exposed.append(path)
    return View(tuple(sorted(hidden)), tuple(exposed), tuple(sorted(files)))


def unhideable(path: str) -> str | None:
    """Why a folder that programs must not see cannot be covered (it is `/`, a top-level system
    folder, or holds folders the runtimes live in), or None. A folder inside SANDBOX_OWN needs no
    cover: programs have their own /tmp, /dev and /proc, and /sys holds no files of ours."""
    real = os.path.realpath(path)
    if _within(real, SANDBOX_OWN):
        return None
    if real == "/" or (os.path.dirname(real) == "/" and os.path.basename(real) in SYSTEM):
        return f"{real} is a system folder"
    if _holds_runtimes(real):
        return f"{real} holds the runtimes' folders"
    return None


def _holds_runtimes(path: str) -> bool:
    """Whether covering `path` would hide one of KEPT or a folder a command links to."""
    return any(_within(kept, (path,)) for kept in (*KEPT, *_needed()))


def _top_level() -> tuple[list[str], list[str], list[str]]:
    """Every top-level entry but SYSTEM's: the folders, the other files (a secret, a socket
    bound there) and where each symlink leads (realpaths)."""
    folders: list[str] = []
    files: list[str] = []
    links: list[str] = []
    try:
        entries = list(os.scandir("/"))
    except OSError:
        return folders, files, links
    for entry in entries:
        if entry.name in SYSTEM:
            continue
        try:
            if entry.is_symlink():
                links.append(os.path.realpath(entry.path))
            elif entry.is_dir():
                folders.append(entry.path)
            else:
                files.append(entry.path)
        except OSError:
            continue
    return folders, files, links


def _candidates() -> list[str]:
    """The executor's own places of user data (realpaths; they may not exist)."""
    paths = [os.environ.get(name) for name in PLACES_FROM_ENV]
    paths.append(os.path.expanduser("~"))
    try:
        paths.append(os.getcwd())
    except OSError:
        pass
    if sys.prefix != sys.base_prefix:  # a virtual environment
        paths.append(sys.prefix)
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if os.path.isfile(os.path.join(checkout, "pyproject.toml")):
        paths.append(checkout)
    return [os.path.realpath(p) for p in paths if p and os.path.isabs(p)]


def _exposed_candidates() -> list[str]:
    """Host folders programs read: EXPOSED_PACKAGES, and the installation of the interpreter a
    warm sandbox's supervisor falls back to where no python3 is on the sandbox's PATH (warm.py)."""
    from multiplt.execution.bwrap import SANDBOX_PATH

    paths = []
    if not shutil.which("python3", path=SANDBOX_PATH):
        paths.append(os.path.realpath(sys.base_prefix))
    for name in EXPOSED_PACKAGES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        for location in (spec.submodule_search_locations or []) if spec else []:
            paths.append(os.path.realpath(location))
    return paths


@functools.lru_cache(maxsize=1)
def _needed() -> tuple[str, ...]:
    """Where the commands on the sandbox's PATH really are (Debian's alternatives, a runtime
    linked from /usr/local/bin into /opt): a cover must not hold one."""
    from multiplt.execution.bwrap import SANDBOX_PATH

    found = set()
    for folder in SANDBOX_PATH.split(":"):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_symlink():
                    found.add(os.path.dirname(os.path.realpath(entry.path)))
            except OSError:
                continue
    return tuple(sorted(found))


def _within(path: str, places) -> bool:
    """Whether `path` is one of `places` or inside one."""
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in places)


def reachable_by_nobody(path: str) -> bool:
    """Whether uid/gid 65534 (no supplementary groups) may enter `path` and every folder above."""
    from multiplt.execution.bwrap import NOBODY

    path = os.path.realpath(path)
    while True:
        try:
            st = os.stat(path)
        except OSError:
            return False
        bit = (stat.S_IXUSR if st.st_uid == NOBODY else
               stat.S_IXGRP if st.st_gid == NOBODY else stat.S_IXOTH)
        if not st.st_mode & bit:
            return False
        if path == "/":
            return True
        path = os.path.dirname(path)
