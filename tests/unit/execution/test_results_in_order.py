"""executor.results_in_order: the waiting thread sees a Ctrl-C at once. The benchmark probe
waited on `list(pool.map(...))`: a wait without a timeout that a pending KeyboardInterrupt does
not wake (nor does a real SIGINT once polars' SA_RESTART handler is installed), so Ctrl-C took
effect only when the running problem finished."""

from __future__ import annotations

import _thread
import concurrent.futures
import threading

import pytest

from multiplt.execution.executor import results_in_order
from tests.support.threads import python_sigint


def test_results_come_in_order():
    futures = [concurrent.futures.Future() for _ in range(3)]
    for i, future in reversed(list(enumerate(futures))):
        future.set_result(i)
    assert list(results_in_order(futures)) == [0, 1, 2]


@pytest.mark.timeout(120, method="thread")  # the old wait never returns: a hang guard, no timing
def test_a_ctrl_c_while_waiting_is_raised_before_the_future_is_done():
    never = concurrent.futures.Future()
    with python_sigint():
        threading.Timer(0.3, _thread.interrupt_main).start()
        with pytest.raises(KeyboardInterrupt):
            list(results_in_order([never]))
    assert not never.done()
