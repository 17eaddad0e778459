"""A Ctrl-C at the instant the output folder's flock is taken (raised at the first Python
instruction after it) leaves no lock behind: `checkpoint.hold_output` creates the lock object
before taking the flock and closes it in its `finally`, so no instruction lies between the flock
and the code that drops it. Before, the locked descriptor came back from a call and was stored
afterwards: an interrupt in between left it open for the rest of the process."""

import sys

import pytest

from multiplt import storage
from multiplt.training import checkpoint
from tests.support.locks import lock_is_free


class MainProcess:
    is_main_process = True


def _interrupt_as_the_lock_returns():
    """A trace function that raises KeyboardInterrupt when FolderLock.__enter__ returns with
    the lock taken: the caller never receives the descriptor."""
    fired = []

    def local(frame, event, arg):
        if event == "return" and frame.f_locals["self"].fd is not None and not fired:
            fired.append(frame.f_locals["self"].fd)
            raise KeyboardInterrupt
        return local

    def tracer(frame, event, arg):
        return local if frame.f_code is storage.FolderLock.__enter__.__code__ else None

    return tracer, fired


def test_a_ctrl_c_as_the_outputs_lock_is_taken_leaves_itlock_is_free(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    tracer, fired = _interrupt_as_the_lock_returns()
    sys.settrace(tracer)
    try:
        with pytest.raises(KeyboardInterrupt):
            with checkpoint.hold_output(str(out), MainProcess()):
                pass
    finally:
        sys.settrace(None)
    assert fired, "the lock was never taken"
    assert lock_is_free(out), "the interrupted train left its output locked"


def test_a_second_train_is_refused_while_the_first_holds_the_output(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with checkpoint.hold_output(str(out), MainProcess()):
        assert not lock_is_free(out)
        with pytest.raises(Exception, match="another `multiplt train` is writing"):
            with checkpoint.hold_output(str(out), MainProcess()):
                pass
    assert lock_is_free(out)
