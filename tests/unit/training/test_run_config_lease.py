"""A new run writes its run config once the base model and the data are loaded: on an `s3://`
--out it checks the lease first, so a train whose lease another train took over meanwhile (it
stalled for longer than lease.TTL_S) stops without clobbering the other's run config; a local
--out (an flock, which nothing takes over) writes it as before."""

import pytest

from multiplt import cli, storage
from multiplt.errors import MultipltError
from multiplt.training import checkpoint, lease, loop
from tests.unit.training.test_train_lease import held_by, later


@pytest.fixture
def stop_at_the_epochs(monkeypatch):
    """Stops a run where its first epoch would begin (the run config is written by then)."""
    def stop(*args, **kwargs):
        raise MultipltError("STOP: the first epoch")
    monkeypatch.setattr(loop, "epoch_order", stop)


def train(tmp_path, out, tiny_model):
    (tmp_path / "racket.jsonl").write_text('{"content": "(define (f x) (+ x 1))"}\n' * 50)
    return cli.main(["train", "--dataset", str(tmp_path / "racket.jsonl"), "--base", tiny_model,
                     "--lang", "rkt", "--experiment", "x", "--seq-len", "16", "--out", str(out)])


def test_a_lease_taken_over_while_loading_keeps_the_others_run_config(s3_bucket, tmp_path, tiny_model, capsys,
                                                                       monkeypatch, stop_at_the_epochs):
    out = f"{s3_bucket}/run"
    monkeypatch.setattr(lease, "RENEW_S", 3600.0)  # no renewal by the thread meanwhile
    taken = {}
    real = loop.materialize

    def stall_then_lose_the_lease(*args, **kwargs):
        got = real(*args, **kwargs)
        if not taken:  # this train stalls past the time-to-live; another one takes the output
            later(monkeypatch, lease.TTL_S + 1)
            taken["other"] = lease.acquire(out)
            storage.write_text(storage.join(out, checkpoint.RUN_CONFIG), "config: {theirs: 1}\n")
        return got

    monkeypatch.setattr(loop, "materialize", stall_then_lose_the_lease)
    assert train(tmp_path, out, tiny_model) == 3  # PlatformError: the stage runtime retries it
    err = capsys.readouterr().err
    assert (f"error: this `multiplt train` of {out} no longer holds the output: another `multiplt train` took "
            f"over its lease (train {taken['other'].owner} on host ") in err
    assert f"; it stops before writing the run config {checkpoint.RUN_CONFIG}, so that two runs do not mix" in err
    assert "STOP" not in err
    assert storage.read_text(storage.join(out, checkpoint.RUN_CONFIG)) == "config: {theirs: 1}\n"
    assert held_by(out)["owner"] == taken["other"].owner  # and the other's lease is left alone
    taken["other"].release()


@pytest.mark.parametrize("where", ["s3", "local"])
def test_a_run_that_holds_its_output_writes_its_run_config(where, s3_bucket, tmp_path, tiny_model, capsys,
                                                           stop_at_the_epochs):
    out = f"{s3_bucket}/run" if where == "s3" else str(tmp_path / "out")
    assert train(tmp_path, out, tiny_model) == 2
    assert "STOP: the first epoch" in capsys.readouterr().err
    saved = checkpoint.read_run_config(out)
    assert saved["config"]["out"] == out and saved["config"]["seq_len"] == 16
    assert held_by(out) is None  # released at the end
