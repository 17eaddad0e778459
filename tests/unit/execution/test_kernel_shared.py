"""Kernel state that namespaces do not separate: refused to programs (seccomp.py).

The kernel's keyrings belong to a uid, not to a mount or PID namespace: a program once left a
key in its user keyring for the next program of the same warm sandbox, and a program of one
bubblewrap found another sandbox's keyring in /proc/keys and added a key to it. add_key,
request_key and keyctl fail with EPERM, as do io_uring, bpf, perf_event_open and userfaultfd,
which no runtime here needs (the docker stage runs its container without Docker's own filter).
"""

from __future__ import annotations

import pytest

from multiplt import languages
from tests.unit.execution.hostile_programs import KERNEL_SHARED
from tests.unit.execution.test_init_reach import MODES, _sandbox

PY = languages.get("py")
CALLS = ["add_key", "request_key", "keyctl", "io_uring_setup", "io_uring_enter",
         "io_uring_register", "bpf", "perf_event_open", "userfaultfd"]


@pytest.mark.parametrize("mode", list(MODES))
def test_keyrings_io_uring_and_the_rest_are_refused(mode):
    with _sandbox(mode) as sandbox:
        finished = sandbox.run(PY, KERNEL_SHARED, 20)
    assert finished.exit_code == 0, finished.stderr
    assert finished.stdout.splitlines() == [f"{name} refused" for name in CALLS]


def test_a_key_left_by_one_program_is_not_found_by_the_next():
    """The warm case: the second program of the same sandbox looked for the first one's key."""
    with _sandbox("warm-python") as sandbox:
        first = sandbox.run(PY, KERNEL_SHARED, 20)
        second = sandbox.run(PY, KERNEL_SHARED, 20)
    assert first.sandbox_info["sandbox-pid-namespace"] == \
        second.sandbox_info["sandbox-pid-namespace"]
    assert "request_key refused" in second.stdout.splitlines(), second.stdout
