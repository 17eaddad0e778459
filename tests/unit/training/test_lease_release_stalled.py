"""A train's lease release on a store that stalls takes at most RELEASE_S, then leaves the lease to
lapse (TTL_S) with one warning. Before, it waited up to 30 s for the renewal thread, 30 s more for
a renewal under way, and then each S3 call of the release (read, delete) its botocore timeouts:
a SIGTERMed `train --out s3://...` on a stalled endpoint took 382 s to exit 143.

A test here that hangs (pytest's timeout) is the bug: no assertion on how long a release took."""

from __future__ import annotations

import logging
import threading

import pytest

from multiplt.training import lease
from tests.support.stalled_s3 import use_endpoint


@pytest.mark.timeout(120)
@pytest.mark.parametrize("renewing", [False, True], ids=["idle", "renewal-under-way"])
def test_a_release_on_a_stalled_store_ends_at_its_deadline(s3_bucket, silent_endpoint, monkeypatch,
                                                          caplog, renewing):
    if renewing:
        monkeypatch.setattr(lease, "RENEW_S", 0.05)
    held = lease.acquire(f"{s3_bucket}/run")
    held.start()
    monkeypatch.setattr(lease, "RELEASE_S", 0.5)
    use_endpoint(monkeypatch, silent_endpoint.url, MULTIPLT_S3_READ_TIMEOUT="30")  # stalls now
    if renewing:  # the next renewal hangs on the store, holding the lease's lock
        for _ in range(3000):
            if silent_endpoint.accepted:
                break
            threading.Event().wait(0.01)
        assert silent_endpoint.accepted, "no renewal reached the store"
    with caplog.at_level(logging.WARNING, logger="multiplt.training"):
        held.release()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    silent_endpoint.close()  # a hanging renewal fails now: its thread logs that, and ends
    held._thread.join(60)
    assert warnings == [f"left the lease on {s3_bucket}/run to lapse (90s after its last renewal): "
                        f"releasing it took longer than 0.5s (a renewal under way, or the storage "
                        f"not answering)"]
