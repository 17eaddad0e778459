"""The compiled per-program init of warm sandboxes (init.c), built once per machine.

Starting a program from the Python supervisor costs a copy of a Python process per program
(page tables, copy-on-write faults, its teardown): on a 2-core machine that was more CPU than a
Lua test program itself. The C init costs a few small processes instead. It is compiled with the
system's C compiler the first time it is needed and cached under the user's cache folder, keyed
by its source; without a compiler the supervisor starts programs itself (same isolation, slower).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
import os
import shutil
import subprocess
import tempfile

LOG = logging.getLogger("multiplt.execution")
NAME = "multiplt-init"
#: the same source as a shared library that pre-loaded runtimes call to fork programs (forkserver.py)
FORK_LIBRARY = "multiplt-fork.so"
_BUILDS = {NAME: [["-static"], []], FORK_LIBRARY: [["-shared", "-fPIC", "-DMULTIPLT_FORK_SERVER"]]}


def _cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "multiplt")


def source() -> bytes:
    return importlib.resources.files("multiplt.execution").joinpath("init.c").read_bytes()


def build(dest_dir: str, name: str = NAME) -> str | None:
    """The compiled init (or with name=FORK_LIBRARY, the fork servers' library), copied into
    `dest_dir` (which the sandbox user can read); None where it cannot be built (the reason is
    logged)."""
    try:
        return build_source(dest_dir, name, source(), _BUILDS[name])
    except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
        LOG.info("warm sandboxes start programs %s (cannot build %s: %s)",
                 "from Python" if name == NAME else "without pre-loaded runtimes", name, exc)
        return None


def build_source(dest_dir: str, name: str, src: bytes, builds: list[list[str]]) -> str:
    """C source `src` compiled with the first of `builds` (lists of compiler flags) that works,
    cached by source and flags, copied into `dest_dir` as `name`. Raises OSError,
    SubprocessError or RuntimeError (no compiler, it failed) where it cannot be built. A
    language's own glue for its pre-loaded runtime (Language.fork_server) is built this way."""
    key = hashlib.sha256(src + repr(builds).encode() + name.encode()
                         + os.uname().machine.encode()).hexdigest()[:16]
    cached = os.path.join(_cache_dir(), f"{name}-{key}")
    if not os.path.exists(cached):
        _compile(src, cached, name, builds)
    dest = os.path.join(dest_dir, name)
    shutil.copyfile(cached, dest)
    os.chmod(dest, 0o755)
    return dest


def build_fork_glue(dest_dir: str, name: str, glue: str, extra_flags: tuple[str, ...] = ()) -> str:
    """init.c's fork-server library with a runtime's own C glue appended (its `*_serve` entry
    point), built as FORK_LIBRARY is, plus `extra_flags` (e.g. an include folder); build_source's
    errors."""
    return build_source(dest_dir, name, source() + glue.encode(),
                        [_BUILDS[FORK_LIBRARY][0] + list(extra_flags)])


def _compile(src: bytes, out: str, name: str, builds: list[list[str]]) -> None:
    cc = shutil.which(os.environ.get("CC") or "gcc")
    if not cc:
        raise RuntimeError("no C compiler (Debian package gcc)")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        c_file = os.path.join(tmp, "source.c")
        with open(c_file, "wb") as f:
            f.write(src)
        binary = os.path.join(tmp, name)
        errors = []
        # The init: static first, no dynamic loading at each start (about a third of its exec time).
        for flags in builds:
            proc = subprocess.run([cc, "-O2", "-Wall", *flags, "-o", binary, c_file],
                                  capture_output=True, text=True, timeout=120)
            if proc.returncode == 0:
                break
            errors.append(proc.stderr.strip()[-500:])
        else:
            raise RuntimeError(f"{cc} failed: {errors[-1]}")
        fd, tmp_out = tempfile.mkstemp(dir=os.path.dirname(out), prefix=f".{name}.")
        os.close(fd)
        shutil.copyfile(binary, tmp_out)
        os.chmod(tmp_out, 0o755)
        os.replace(tmp_out, out)  # atomic: concurrent builders agree on the result


if __name__ == "__main__":  # `python -m multiplt.execution.native`: build (and cache) all now
    import sys
    import tempfile as _tempfile

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ok = True
    for _name in (NAME, FORK_LIBRARY):
        with _tempfile.TemporaryDirectory() as _tmp:
            built = build(_tmp, _name)
        print(f"{_name}: {'built and cached in ' + _cache_dir() if built else 'not built'}")
        ok = ok and bool(built)
    # and what each language's pre-loaded runtime compiles for itself (Language.fork_server)
    from multiplt.execution import forkserver
    from multiplt.languages import registry

    for _code in registry.names():
        with _tempfile.TemporaryDirectory() as _tmp:
            _argv = forkserver.build(registry.get(_code), _tmp)
        print(f"{_code}: {'a pre-loaded runtime' if _argv else 'a fresh interpreter per program'}")
    sys.exit(0 if ok else 1)
