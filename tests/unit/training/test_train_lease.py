"""Two `multiplt train` of one object-storage --out (a zombie Airflow try beside its retry) are kept
apart by the output's lease (multiplt/training/lease.py), on the moto S3 server: a live lease
refuses a second train; a lapsed one is taken over, and its old holder's check before its next
write then fails naming the new one; release deletes only this train's lease; a server without
conditional writes gets one warning and no lease."""

import json
import logging
import time
import types

import pytest

from multiplt import storage
from multiplt.errors import PlatformError
from multiplt.training import checkpoint, lease
from tests.unit.training import test_out_folder

loading = test_out_folder.loading  # the fixture: a run stops where it would load the base model
train = test_out_folder.train

ADVICE = "once it has ended, rerun to resume from its newest checkpoint or find the run done"


class MainProcess:
    """What hold_output and save_epoch ask of the accelerator of a one-process run."""

    is_main_process = True

    def get_state_dict(self, model):
        raise AssertionError("save_epoch went on to write after a lost lease")


def held_by(out) -> dict | None:
    try:
        return json.loads(storage.read_bytes(lease.lease_uri(out)))
    except storage.NotFound:
        return None


def later(monkeypatch, seconds):
    """Every clock reading of lease.py `seconds` later than now."""
    monkeypatch.setattr(lease, "clock", lambda: time.time() + seconds)


def test_a_live_lease_refuses_a_second_train(s3_bucket):
    out = f"{s3_bucket}/run"
    first = lease.acquire(out)
    record = held_by(out)
    assert record["owner"] == first.owner and record["renewed"] == record["acquired"]
    assert {"host", "pid"} <= set(record)
    with pytest.raises(PlatformError) as refused:
        lease.acquire(out)
    assert refused.value.exit_code == 3
    message = str(refused.value)
    assert message.startswith(f"another `multiplt train` is writing {out} (it holds the output's lease: "
                              f"train {first.owner} on host {record['host']}, pid {record['pid']}, renewed ")
    assert ADVICE in message
    assert held_by(out) == record  # the refused one wrote nothing
    first.check("checkpoint rkt-x-epoch1")  # still ours: renewed
    assert held_by(out)["owner"] == first.owner and held_by(out)["renewed"] >= record["renewed"]
    first.release()
    assert held_by(out) is None
    assert lease.acquire(out) is not None  # released: the next train gets it at once


def test_a_lapsed_lease_is_taken_over_and_its_old_holder_stops_before_writing(s3_bucket, monkeypatch, caplog):
    out = f"{s3_bucket}/run"
    old = lease.acquire(out)
    later(monkeypatch, lease.TTL_S + 1)  # the old holder stalled for longer than the time-to-live
    with caplog.at_level(logging.WARNING, logger="multiplt.training"):
        new = lease.acquire(out)
    assert new.owner != old.owner and held_by(out)["owner"] == new.owner
    assert f"taking over the lease on {out} from train {old.owner}" in caplog.text

    with pytest.raises(PlatformError) as stopped:
        old.check("checkpoint rkt-x-epoch2")
    assert str(stopped.value).startswith(
        f"this `multiplt train` of {out} no longer holds the output: another `multiplt train` took over "
        f"its lease (train {new.owner} on host ")
    assert str(stopped.value).endswith("; it stops before writing checkpoint rkt-x-epoch2, so that two "
                                       "runs do not mix in the output")
    with pytest.raises(PlatformError, match=new.owner):  # and stays stopped
        old.renew()
    new.check("checkpoint rkt-x-epoch2")  # the new holder goes on

    old.release()  # not its lease any more: left alone
    assert held_by(out)["owner"] == new.owner
    new.release()
    assert held_by(out) is None


def test_save_epoch_checks_the_lease_before_it_writes_anything(s3_bucket, monkeypatch):
    out = f"{s3_bucket}/run"
    old = lease.acquire(out)
    later(monkeypatch, lease.TTL_S + 1)
    new = lease.acquire(out)
    config = types.SimpleNamespace(out=out, tag=lambda epoch: f"rkt-x-epoch{epoch}")
    with pytest.raises(PlatformError, match=f"took over its lease \\(train {new.owner} .*; it stops "
                                            "before writing checkpoint rkt-x-epoch3,"):
        checkpoint.save_epoch(config, MainProcess(), None, None, {}, None, None, 3, 30, 1.0, [], 0,
                              lease=old)
    assert storage.ls(out) == [lease.lease_uri(out)]


def test_release_deletes_only_this_trains_lease(s3_bucket, tmp_path):
    for out in (f"{s3_bucket}/run", str(tmp_path / "run")):  # the primitives work on local files too
        mine = lease.acquire(out)
        mine.release()
        assert held_by(out) is None
        mine = lease.acquire(out)
        other = {"owner": "someone-else", "host": "h", "pid": 1, "acquired": time.time(),
                 "renewed": time.time()}
        storage.write_bytes(lease.lease_uri(out), json.dumps(other).encode())  # e.g. by hand
        mine.release()
        assert held_by(out) == other


def test_the_renewal_thread_keeps_the_lease_fresh(s3_bucket, monkeypatch):
    monkeypatch.setattr(lease, "RENEW_S", 0.01)
    out = f"{s3_bucket}/run"
    mine = lease.acquire(out)
    acquired = held_by(out)["acquired"]
    mine.start()
    deadline = time.monotonic() + 60
    while held_by(out)["renewed"] == acquired:
        assert time.monotonic() < deadline, "the lease was never renewed"
        time.sleep(0.01)
    mine.check("checkpoint rkt-x-epoch1")  # the thread's renewals left it ours, at its version
    mine.release()
    assert not mine._thread.is_alive() and held_by(out) is None


def test_a_server_without_conditional_writes_trains_unlocked_with_one_warning(s3_server, monkeypatch, caplog):
    from botocore.stub import Stubber

    from multiplt.storage import s3

    monkeypatch.setattr(lease, "_warned_unsupported", False)
    out = "s3://bucket/run"
    with Stubber(s3.client()) as stub, caplog.at_level(logging.WARNING, logger="multiplt.training"):
        for _ in range(2):
            stub.add_client_error("get_object", service_error_code="NoSuchKey", http_status_code=404)
            stub.add_response("list_objects_v2", {})  # the bucket is there
            stub.add_client_error("put_object", service_error_code="NotImplemented", http_status_code=501)
        with checkpoint.hold_output(out, MainProcess()) as held:
            assert held is None  # runs on, unlocked
        assert lease.acquire(out) is None
        stub.assert_no_pending_responses()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "does not support If-Match/If-None-Match" in warnings[0]
    assert f"so {out} is trained without a lease" in warnings[0]


def test_hold_output_refuses_a_second_train_of_an_s3_output(s3_bucket, tmp_path, capsys, loading):
    out = f"{s3_bucket}/run"
    other = lease.acquire(out)  # another train holds the output (before it wrote anything else)
    assert train(tmp_path, out) == 3  # PlatformError: the stage runtime retries it
    err = capsys.readouterr().err
    assert (f"error: another `multiplt train` is writing {out} (it holds the output's lease: train "
            f"{other.owner} on host ") in err and ADVICE in err
    assert err.count("error:") == 1 and "STOP" not in err and "new --out" not in err
    assert held_by(out)["owner"] == other.owner
    other.release()
    assert train(tmp_path, out) == 2  # once it has ended, the run goes on (here: to the base model)
    assert "STOP: would load base-model" in capsys.readouterr().err
    assert held_by(out) is None  # released as the run ended with its error
    assert storage.ls(out) == []
