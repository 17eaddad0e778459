"""The Racket fork server's huge-pages library (multiplt/languages/racket_server.py): large
private anonymous mappings come back 2 MiB-aligned, everything else exactly as asked, and at the
address-space limit the mapping is still made."""

from __future__ import annotations

import subprocess
import sys

import pytest

from multiplt.languages import racket_server

_PROBE = r"""
import ctypes, mmap, resource, sys
MB = 1 << 20
def address(m):
    return ctypes.addressof(ctypes.c_char.from_buffer(m))
PRIVATE = mmap.MAP_PRIVATE
big = mmap.mmap(-1, 2 * MB + 16384, flags=PRIVATE)  # as Chez Scheme asks for its heap chunks
small = [mmap.mmap(-1, 64 * 1024, flags=PRIVATE) for _ in range(8)]  # below 2 MiB: as asked
print("big", address(big) % (2 * MB) == 0)
print("small", all(address(m) % 4096 == 0 for m in small), any(address(m) % (2 * MB) for m in small))
big[0:5] = b"hello"; print("usable", big[0:5] == b"hello", len(big))
# near the address-space limit the wider reservation fails: the mapping is made as asked
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
used = int(open("/proc/self/statm").read().split()[0]) * 4096
resource.setrlimit(resource.RLIMIT_AS, (used + 3 * MB, hard))
tight = mmap.mmap(-1, 2 * MB + 16384, flags=PRIVATE)
print("tight", len(tight))
"""


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    from multiplt.execution import native

    folder = tmp_path_factory.mktemp("hugepages")
    try:
        return native.build_source(str(folder), racket_server.HUGE_PAGES_LIBRARY,
                                   racket_server.HUGE_PAGES.encode(), [["-shared", "-fPIC"]])
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        pytest.skip(f"no C compiler here: {exc}")


def test_large_anonymous_mappings_are_aligned_and_the_rest_as_asked(library):
    out = subprocess.run([sys.executable, "-c", _PROBE], env={"LD_PRELOAD": library},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert lines["big"] == "True"
    assert lines["small"] == "True True"  # page-aligned, and not all pushed to 2 MiB
    assert lines["usable"] == f"True {2 * (1 << 20) + 16384}"
    assert lines["tight"] == str(2 * (1 << 20) + 16384)


def test_without_a_compiler_the_server_runs_without_the_library(tmp_path, monkeypatch):
    from multiplt.execution import native

    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C compiler (Debian package gcc)")

    monkeypatch.setattr(native, "build_source", no_compiler)
    argv = racket_server.argv(str(tmp_path), "/lib/multiplt-fork.so")
    assert argv == ["racket", str(tmp_path / "server.rkt"), "/lib/multiplt-fork.so",
                    racket_server.PROGRAM]
    assert (tmp_path / "server.rkt").read_text() == racket_server.SERVER


def test_with_the_library_it_is_preloaded_into_the_server_only(library, tmp_path):
    argv = racket_server.argv(str(tmp_path), "/lib/multiplt-fork.so")
    assert argv[0] == "env" and argv[1].startswith("LD_PRELOAD=") and argv[2] == "racket"
    # the server removes it from its environment before any program runs
    assert '(environment-variables-set! (current-environment-variables) #"LD_PRELOAD" #f)' \
        in racket_server.SERVER
