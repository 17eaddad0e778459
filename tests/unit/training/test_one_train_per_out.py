"""Two `multiplt train` of one --out (two reruns after a kill, a zombie try beside its retry): a
local output is held by one at a time, and a resume whose state another train pruned meanwhile
(object storage, which nothing locks) is retried, never told to drop the finished run."""

import fcntl
import json
import os

import pytest

from multiplt.errors import MultipltError, PlatformError
from multiplt.training import checkpoint
from tests.unit.training.test_out_folder import loading, train  # noqa: F401 (the fixture)


def test_a_second_train_of_a_held_output_is_refused_and_retried(tmp_path, capsys, loading):
    out = tmp_path / "out"
    out.mkdir()
    (out / "_multiplt_train.yaml").write_text("config: {}\n")
    other = os.open(out, os.O_RDONLY | os.O_DIRECTORY)  # another train holds the output
    try:
        fcntl.flock(other, fcntl.LOCK_EX)
        assert train(tmp_path, out) == 3  # PlatformError: the stage runtime retries it
        err = capsys.readouterr().err
        assert (f"error: another `multiplt train` is writing {out} (it holds the output's lock); once "
                "it has ended, rerun to resume from its newest checkpoint or find the run done") in err
        assert err.count("error:") == 1 and "STOP" not in err and "new --out" not in err
    finally:
        os.close(other)
    assert train(tmp_path, out) == 2  # once it has ended, the run goes on (here: to the base model)
    assert "STOP: would load base-model" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["_multiplt_train.yaml"]


def test_a_refused_run_leaves_no_folder_it_made_for_its_lock(tmp_path, capsys, loading):
    out = tmp_path / "new" / "out"
    assert train(tmp_path, out) == 2
    assert "STOP" in capsys.readouterr().err
    assert not out.exists()


def manifest_rows(out, *epochs):
    (out / "manifest.jsonl").write_text("".join(json.dumps(
        {"uri": str(out / "checkpoints" / f"rkt-x-epoch{e}"), "tag": f"rkt-x-epoch{e}", "epoch": e,
         "lang": "rkt", "experiment": "x"}) + "\n" for e in epochs))


def test_a_state_pruned_by_another_train_after_the_manifest_was_read(tmp_path):
    """Train A read the manifest (newest epoch2); train B then committed epoch3 and pruned
    state/epoch2: A's fetch says so (retried: the rerun resumes from epoch3 or finds the run done)."""
    out = tmp_path / "out"
    (out / "state" / "rkt-x-epoch3").mkdir(parents=True)
    (out / "state" / "rkt-x-epoch3" / checkpoint.TRAINER_STATE).write_text('{"epoch": 3}')
    manifest_rows(out, 1, 2, 3)
    with pytest.raises(PlatformError) as raised:
        checkpoint.fetch_state(str(out), "rkt-x-epoch2", str(tmp_path / "dl"))
    assert str(raised.value) == (f"cannot resume {out} from rkt-x-epoch2: another `multiplt train` of it "
                                 "has committed rkt-x-epoch3 since this one read the manifest, and removed "
                                 "rkt-x-epoch2's state; rerun to resume from rkt-x-epoch3 or find the run done")
    assert checkpoint.fetch_state(str(out), "rkt-x-epoch3", str(tmp_path / "dl"))[1] == {"epoch": 3}
    manifest_rows(out, 1, 2)  # the newest row's state itself is missing: the output is broken
    with pytest.raises(MultipltError, match="holds no complete training state") as raised:
        checkpoint.fetch_state(str(out), "rkt-x-epoch2", str(tmp_path / "dl"))
    assert not isinstance(raised.value, PlatformError)
