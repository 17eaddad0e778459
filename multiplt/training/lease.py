"""A lease on a training output that has no local path (`--out s3://bucket/run`): what the flock of
`checkpoint.hold_output` is for a local folder. Object storage has no locks, so one train at a
time is kept to by a small object, `OUT/.train-lease.json`, written and renewed only by
compare-and-swap on its version (`storage.read_versioned` + `storage.write_bytes_if`):

    {"owner": "<random id of this train>", "host": "...", "pid": 123,
     "acquired": <unix time>, "renewed": <unix time>}

- `acquire(out)` creates it (only if absent), or takes over one whose last renewal is older than
  TTL_S (a train that crashed or was killed leaves it behind; a CAS on the version read, so of two
  trains taking it over at once one wins); a live one (renewed within TTL_S) is refused with
  PlatformError (exit 3: the stage runtime retries).
- `Lease.start()` renews it every RENEW_S seconds from a daemon thread, each renewal a CAS on the
  version this train wrote last.
- `Lease.check(what)` before each write that matters renews it at once: when another train has
  taken it over (this one stalled longer than TTL_S: a zombie Airflow try beside its retry), it is
  PlatformError naming that train, and this one stops before writing.
- `Lease.release()` deletes it at the end, only while it is still this train's, taking at most
  RELEASE_S (a stalled store: the lease is left to lapse).

Expiry compares the renewal time written by one host with the clock of another: the hosts'
clocks must agree to well within TTL_S (NTP does). A server without conditional writes
(`storage.ConditionalWriteUnsupported`) gets no lease: one warning, and the run goes on unlocked.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid

from multiplt import storage
from multiplt.errors import MultipltError, PlatformError

LOG = logging.getLogger("multiplt.training")
LEASE_NAME = ".train-lease.json"
#: seconds between renewals (a holder renews well within TTL_S, so a live one never lapses)
RENEW_S = 20.0
#: seconds after its last renewal that a lease lapses and another train may take it over: below
#: the finetune DAG's retry_delay (2 minutes), so the retry of a try that was killed (SIGTERM on
#: a timeout, SIGKILL, a lost worker: no release) finds the lease lapsed instead of failing
TTL_S = 90.0
#: the longest a release takes (it runs while a run ends, an interrupted one too): waiting for a
#: renewal under way and for the storage; past it the lease is left to lapse (TTL_S)
RELEASE_S = 10.0
#: the time written into leases and compared with theirs (wall clock: it is compared across hosts)
clock = time.time
_warned_unsupported = False


def lease_uri(out: str) -> str:
    return storage.join(out, LEASE_NAME)


def _decode(data: bytes) -> dict | None:
    """The lease record in `data`; None when it is none (not JSON, or fields missing)."""
    try:
        record = json.loads(data)
    except ValueError:
        return None
    if (not isinstance(record, dict) or not isinstance(record.get("owner"), str)
            or not isinstance(record.get("renewed"), (int, float)) or isinstance(record["renewed"], bool)):
        return None
    return record


def _encode(record: dict) -> bytes:
    return json.dumps(record, indent=1).encode("utf-8")


def _read(uri: str) -> tuple[dict | None, bytes | None, str | None]:
    """(record or None, raw bytes, version tag); all None when there is no lease object."""
    try:
        data, etag = storage.read_versioned(uri)
    except storage.NotFound:
        return None, None, None
    return _decode(data), data, etag


def describe(record: dict) -> str:
    """Which train holds `record`: its owner id, host and process."""
    return (f"train {record.get('owner')} on host {record.get('host', '?')}, "
            f"pid {record.get('pid', '?')}")


def busy_message(out: str, record: dict, age: float) -> str:
    """hold_output's refusal of a second train (the flock's words, with the holder named)."""
    return (f"another `multiplt train` is writing {out} (it holds the output's lease: {describe(record)}, "
            f"renewed {max(age, 0):.0f}s ago); once it has ended, rerun to resume from its newest "
            f"checkpoint or find the run done (a train that was killed leaves its lease behind: it "
            f"lapses {TTL_S:.0f}s after its last renewal)")


def _warn_unsupported(out: str, exc: storage.ConditionalWriteUnsupported) -> None:
    global _warned_unsupported
    if not _warned_unsupported:
        _warned_unsupported = True
        LOG.warning("%s; so %s is trained without a lease, and nothing keeps a second `multiplt "
                    "train` of it from writing it at the same time: run one at a time", exc, out)


def acquire(out: str) -> Lease | None:
    """The lease on `out` (not yet renewed: `start()` it), taken now: created when there is none,
    taken over when the last renewal of the one there is older than TTL_S (or it is no lease).
    PlatformError with `busy_message` when another train holds a live one; None, with one warning
    per process, when the storage server has no conditional writes."""
    uri = lease_uri(out)
    owner = uuid.uuid4().hex
    for _ in range(3):  # a lost race is another train taking it: the next read names that one
        held, data, etag = _read(uri)
        now = clock()
        if held is not None:
            age = now - held["renewed"]
            if age <= TTL_S:
                raise PlatformError(busy_message(out, held, age))
            LOG.warning("taking over the lease on %s from %s: last renewed %.0fs ago, longer than its "
                        "%.0fs time-to-live (that train has ended or stalled; it stops before its next "
                        "write)", out, describe(held), age, TTL_S)
        elif data is not None:
            LOG.warning("%s holds no lease this platform wrote; replacing it", uri)
        record = {"owner": owner, "host": socket.gethostname(), "pid": os.getpid(),
                  "acquired": now, "renewed": now}
        try:
            written = storage.write_bytes_if(uri, _encode(record), etag)
        except storage.ConditionalWriteUnsupported as exc:
            _warn_unsupported(out, exc)
            return None
        if not written:
            continue
        lease = Lease(out, record, etag=None)
        lease.adopt()
        if lease.lost:
            raise PlatformError(lease.lost)
        return lease
    raise PlatformError(f"another `multiplt train` is writing {out} (it keeps taking the output's lease "
                        f"{uri}); once it has ended, rerun to resume from its newest checkpoint or find "
                        f"the run done")


class Lease:
    """This train's lease on `out` (see the module's docstring). `lost` is None while it holds it,
    else the message of the PlatformError `check` raises."""

    def __init__(self, out: str, record: dict, etag: str | None):
        self.out = out
        self.uri = lease_uri(out)
        self.owner = record["owner"]
        self.record = record
        self.etag = etag
        self.lost: str | None = None
        self._lock = threading.Lock()  # one renewal at a time (the thread's, check's, release's)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- reading it back -------------------------------------------------------------------
    def adopt(self) -> bool:
        """Read the lease object: when it is still this train's, take its version as the one to
        renew on (True); else set `lost`, naming whoever holds it now (False)."""
        held, _, etag = _read(self.uri)
        if held is not None and held["owner"] == self.owner:
            self.etag, self.record = etag, held
            return True
        if held is None:
            how = f"its lease {self.uri} is gone (removed by hand, or by a train that took it over and ended)"
        else:
            how = (f"another `multiplt train` took over its lease ({describe(held)}) after this one's "
                   f"lapsed (no renewal for more than {TTL_S:.0f}s)")
        self.lost = f"this `multiplt train` of {self.out} no longer holds the output: {how}"
        return False

    # ---- renewing ----------------------------------------------------------------------------
    def renew(self) -> None:
        """Write the renewal time now, on the version this train wrote last (CAS).
        PlatformError when another train holds the lease now (`lost`)."""
        with self._lock:
            self._renew()

    def _renew(self) -> None:
        if self.lost:
            raise PlatformError(self.lost)
        for _ in range(2):
            record = dict(self.record, renewed=clock())
            written = storage.write_bytes_if(self.uri, _encode(record), self.etag)
            # read back: the version to renew on next; or, not written, whether it is still ours
            # (a renewal whose answer was lost and whose retry was refused moved the version on)
            if not self.adopt():
                raise PlatformError(self.lost)
            if written:
                return
        raise PlatformError(f"cannot renew the lease on {self.out}: {self.uri} keeps changing")

    def check(self, what: str) -> None:
        """Before writing `what` to the output: renew the lease at once, so this train still holds
        it, freshly renewed, when it writes; else PlatformError naming the train that holds it, and
        nothing is written."""
        try:
            self.renew()
        except PlatformError as exc:
            if self.lost:
                raise PlatformError(f"{exc}; it stops before writing {what}, so that two runs do not "
                                    f"mix in the output") from None
            raise

    def _renew_every(self) -> None:
        while not self._stop.wait(RENEW_S):
            try:
                self.renew()
            except MultipltError as exc:
                if self.lost:
                    LOG.error("%s; it stops before its next write", self.lost)
                    return
                LOG.warning("could not renew the lease on %s (%s); trying again in %.0fs", self.out,
                            exc, RENEW_S)
            except Exception as exc:  # noqa: BLE001 - the thread must outlive a network hiccup
                LOG.warning("could not renew the lease on %s (%s: %s); trying again in %.0fs", self.out,
                            type(exc).__name__, exc, RENEW_S)

    def start(self) -> None:
        """Renew every RENEW_S seconds from a daemon thread, until `release`."""
        self._thread = threading.Thread(target=self._renew_every, name="multiplt-train-lease", daemon=True)
        self._thread.start()

    # ---- releasing ---------------------------------------------------------------------------
    def release(self) -> None:
        """Stop renewing and delete the lease object if it is still this train's (and not about to
        lapse: another train may be taking it over). Never raises (it runs while an error or an
        interrupt ends the run) and takes at most RELEASE_S in all, waiting for a renewal under
        way and for the storage (an S3 endpoint that stalls) on a thread of its own, left behind
        when time is up: a lease it cannot delete lapses TTL_S after its last renewal."""
        self._stop.set()
        deadline = time.monotonic() + RELEASE_S
        done = threading.Event()
        said: list[str] = []  # the thread's warning, logged here (none once time is up)

        def run() -> None:
            try:
                self._release(deadline, said)
            finally:
                done.set()

        threading.Thread(target=run, name="multiplt-train-lease-release", daemon=True).start()
        if not done.wait(RELEASE_S):
            said[:] = [self._too_long()]
        if said:
            LOG.warning("%s", said[0])

    def _too_long(self) -> str:
        return (f"left the lease on {self.out} to lapse ({TTL_S:.0f}s after its last renewal): "
                f"releasing it took longer than {RELEASE_S:g}s (a renewal under way, or the "
                f"storage not answering)")

    def _release(self, deadline: float, said: list[str]) -> None:
        if self._thread is not None:
            self._thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if not self._lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            said.append(self._too_long())
            return
        try:
            if self.lost:
                return
            held, _, _ = _read(self.uri)
            if held is None or held["owner"] != self.owner:
                return
            if clock() - held["renewed"] > TTL_S / 2:
                said.append(f"left the lease on {self.out} to lapse: its last renewal is "
                            f"{clock() - held['renewed']:.0f}s old, so another train may be taking "
                            f"it over")
                return
            storage.delete(self.uri)
        except Exception as exc:  # noqa: BLE001 - see release's docstring
            said.append(f"could not release the lease on {self.out} ({exc}); it lapses "
                        f"{TTL_S:.0f}s after its last renewal")
        finally:
            self._lock.release()
