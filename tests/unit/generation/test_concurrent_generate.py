"""Two generates writing one folder at once (a cleared Airflow task's zombie try beside its new
try; two evaluations of one model with different --n, whose run folder's name has no n): a
problem file never loses completions to a run that read it earlier, the record's n is the most
any run asked for, and `complete: true` needs every selected problem to hold that many.

The interleavings are made deterministic by running the second generate from inside the first
one's backend, between two of its batches, where a real second process could write."""

import fcntl
import logging
import os
import re
import time

import pytest

from multiplt.errors import MultipltError
from multiplt.evaluation import passk
from multiplt.evaluation.run_folder import completion_counts
from multiplt.generation import folder
from multiplt.generation.replay import ReplayBackend

from tests.unit.generation.test_driver_replay import run

PROBLEMS = ["HumanEval_0_f", "HumanEval_1_f", "HumanEval_2_f"]


class Killed(BaseException):
    """The first generate's SIGKILL: it stops where it is and writes nothing more."""


def interleave(monkeypatch, other, *, at: int, kill_at: int | None = None):
    """The next generate's backend yields `at` batches (the driver writes each before asking for
    the next), then `other()`, another generate into the folder, runs to its end, then the first
    goes on; at batch `kill_at` it is killed."""
    real = ReplayBackend.generate
    state = {"first": True}

    def generate(self, requests, sampling):
        if not state["first"]:  # the other generate's backend, as it is
            yield from real(self, requests, sampling)
            return
        state["first"] = False
        for i, group in enumerate(real(self, requests, sampling)):
            if i == at:
                other()
            if i == kill_at:
                raise Killed
            yield group

    monkeypatch.setattr(ReplayBackend, "generate", generate)


def test_a_zombie_try_does_not_cut_the_files_its_retry_finished(bench, tmp_path):
    """Case B: the same command twice. The slow first try (one sample a batch) has written
    problem 0's first sample; the retry (--batch-size 16) finishes the folder; the first try's
    next write came from its snapshot (1 completion, now 2) and cut problem 0 to 2 of 4 under a
    record saying n: 4, complete: true, which score took; then the first try was killed. Now the
    file keeps the retry's 4."""
    out = str(tmp_path / "run")
    with pytest.MonkeyPatch.context() as mp:
        interleave(mp, lambda: run(bench, out, n=4, batch_size=16), at=1, kill_at=2)
        with pytest.raises(Killed):
            run(bench, out, n=4, batch_size=1)
    assert completion_counts(out) == {p: 4 for p in PROBLEMS}
    record = folder.read_run(out)
    assert record["n"] == 4 and record["complete"] is True
    with pytest.raises(MultipltError, match="not fully executed"):  # generated whole
        passk.read_counts(out, allow_partial=False)
    assert run(bench, out, n=4)["generated"] == 0  # and a rerun has nothing to do


def test_a_zombie_that_wrote_after_its_retry_ended_leaves_false_and_a_rerun_finishes_it(
        bench, tmp_path):
    """The first try's first write comes after the retry finished the folder: its `complete:
    false` stays when it is killed (it cannot know), its snapshot (none) cuts no file, and a
    rerun, with nothing to generate, finds the folder whole and sets the record true."""
    out = str(tmp_path / "run")
    with pytest.MonkeyPatch.context() as mp:
        interleave(mp, lambda: run(bench, out, n=4, batch_size=16), at=0, kill_at=1)
        with pytest.raises(Killed):
            run(bench, out, n=4, batch_size=3)
    assert completion_counts(out) == {p: 4 for p in PROBLEMS}
    assert folder.read_run(out)["complete"] is False
    assert run(bench, out, n=4)["generated"] == 0
    assert folder.read_run(out)["complete"] is True


def test_a_run_of_smaller_n_that_read_the_folder_first_cuts_no_file_nor_n(bench, tmp_path,
                                                                         monkeypatch):
    """Case A: --n 4 and --n 2 into a new folder. --n 2 read the (empty) folder and made its
    record (n: 2) while --n 4 ran to its end; then --n 2 wrote its record over the other's (n: 2,
    complete: true over files of 4) and its files from its empty snapshot (2 completions over
    4). Now the record keeps the most any run asked for, n: 4, and each file its 4 completions."""
    out = str(tmp_path / "run")
    interleave(monkeypatch, lambda: run(bench, out, n=4), at=0)
    assert run(bench, out, n=2, batch_size=16)["written"] == 0  # every file had more already
    assert completion_counts(out) == {p: 4 for p in PROBLEMS}
    record = folder.read_run(out)
    assert record["n"] == 4 and record["complete"] is True


def test_complete_stays_false_while_a_file_holds_fewer_than_the_records_n(bench, tmp_path,
                                                                          monkeypatch, caplog):
    """--n 4 has written its first sample (record n: 4, complete: false) when --n 2 runs to its
    end: --n 2 wrote complete: true, and after --n 4 was killed the record said n: 4, complete:
    true over files of 2, which score took without a word. Now --n 2 leaves it false and says
    so; score refuses the folder, and --n 4 again finishes it."""
    out = str(tmp_path / "run")
    caplog.set_level(logging.WARNING, logger="multiplt.generation")

    def the_smaller_run():
        run(bench, out, n=2)
        assert folder.read_run(out)["complete"] is False

    with pytest.MonkeyPatch.context() as mp:
        interleave(mp, the_smaller_run, at=1, kill_at=1)
        with pytest.raises(Killed):
            run(bench, out, n=4, batch_size=1)
    assert "run record stays complete: false: 3 problem(s) hold fewer than its n=4" in caplog.text
    record = folder.read_run(out)
    assert record["n"] == 4 and record["complete"] is False
    assert completion_counts(out) == {p: 2 for p in PROBLEMS}
    with pytest.raises(MultipltError, match=r"not fully generated: .*e\.g\. HumanEval_0_f \(2 of 4\)"):
        passk.read_counts(out, allow_partial=False)
    assert run(bench, out, n=2)["generated"] == 0
    assert folder.read_run(out)["complete"] is False  # a smaller --n with nothing to do: still short
    assert run(bench, out, n=4)["generated"] == 6
    assert folder.read_run(out)["complete"] is True


def test_a_problem_file_short_of_n_keeps_complete_false(bench, tmp_path):
    """The final check reads the files again: one cut behind the run's back (here by hand, as an
    unlocked writer on object storage could) keeps `complete: false`."""
    out = str(tmp_path / "run")
    run(bench, out, n=2)
    record = folder.read_problem(out, "HumanEval_1_f")
    run(bench, out, problems="HumanEval_0_f", n=3)  # record n: 3; problems 1 and 2 hold 2
    assert folder.read_run(out)["complete"] is False
    folder.write_problem(out, {**record, "completions": record["completions"] * 2})  # 4
    run(bench, out, n=3, problems="HumanEval_2_f")
    assert folder.read_run(out)["complete"] is True  # every problem holds 3 or more now
    folder.write_problem(out, {**record, "completions": record["completions"][:1]})
    with folder.locked(out):
        assert folder.finish(out, []) == [("HumanEval_1_f", 1, 3)]
    assert folder.read_run(out)["complete"] is False


def test_each_read_merge_write_holds_the_folders_lock(bench, tmp_path, monkeypatch):
    """A local folder is flocked from the re-read of a problem file or of the record to its
    write, so another generate cannot write in between."""
    out = str(tmp_path / "run")
    held = []

    def probe():
        os.makedirs(out, exist_ok=True)  # (made by the write that follows, if not yet)
        fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held.append(False)
        except BlockingIOError:
            held.append(True)
        finally:
            os.close(fd)

    real_problem, real_run = folder.write_problem, folder.write_run
    monkeypatch.setattr(folder, "write_problem", lambda o, r: (probe(), real_problem(o, r)))
    monkeypatch.setattr(folder, "write_run", lambda o, r, *select: (probe(), real_run(o, r, *select)))
    run(bench, out, n=2)
    assert len(held) >= 5 and all(held)  # the record, each problem file (once or more), complete
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)  # and let go after
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.close(fd)


def test_a_run_of_other_settings_written_meanwhile_is_refused_at_the_write(bench, tmp_path,
                                                                           monkeypatch):
    """Two generates of other sampling settings that start into a new folder at the same moment
    both find no record; the second to write finds the first's record and is refused, writing
    nothing (a problem file of other settings is refused likewise: add_samples)."""
    out = str(tmp_path / "run")
    interleave(monkeypatch, lambda: run(bench, out, n=2, temperature=0.8), at=0)
    with pytest.raises(MultipltError, match=r"_multiplt_run\.yaml records a different run "
                                            r"\(temperature: folder has 0\.8"):
        run(bench, out, n=2)
    assert completion_counts(out) == {p: 2 for p in PROBLEMS}  # the other's, as it wrote them


def test_on_object_storage_a_file_another_generate_wrote_meanwhile_is_merged_again(
        s3_bucket, monkeypatch):
    """Object storage has no lock: another generate may write a problem file between this one's
    read and its write. The write is conditional on the version read, so it fails, and the file
    is read and merged again instead of cut to this run's count."""
    from multiplt import storage

    out = f"{s3_bucket}/run"
    base = {"name": "P", "language": "py", "prompt": "def f():\n", "tests": "assert True\n",
            "stop_tokens": ["\ndef"], "temperature": 0.2, "top_p": 0.95, "max_tokens": 64}
    folder.write_problem(out, {**base, "completions": ["a"]})
    uri = folder.problem_uri(out, "P")
    raced = []

    def after_reading(real):
        def read(*args, **kwargs):
            value = real(*args, **kwargs)
            if not raced:  # the other generate writes all 4 samples right after this read
                raced.append(True)
                storage.write_json(uri, {**base, "completions": ["a", "b", "c", "d"]})
            return value
        return read

    monkeypatch.setattr(storage, "read_versioned", after_reading(storage.read_versioned))
    monkeypatch.setattr(storage, "read_json", after_reading(storage.read_json))
    merged, pending, wrote = folder.add_samples(out, {**base, "completions": ["a", "b", "c"]}, "bench")
    assert raced and (merged, pending, wrote) == (["a", "b", "c", "d"], {}, False)
    assert storage.read_json(uri)["completions"] == ["a", "b", "c", "d"]


OBJECT_PROBLEM = {"name": "P", "language": "py", "prompt": "def f():\n", "tests": "assert True\n",
                  "stop_tokens": ["\ndef"], "temperature": 0.2, "top_p": 0.95, "max_tokens": 64}


def test_on_object_storage_a_file_that_keeps_changing_is_a_retryable_error(s3_bucket, monkeypatch):
    from multiplt import storage
    from multiplt.errors import PlatformError

    out = f"{s3_bucket}/run"
    folder.write_problem(out, {**OBJECT_PROBLEM, "completions": ["a"]})
    uri, tries = folder.problem_uri(out, "P"), []
    monkeypatch.setattr(folder, "WRITE_ATTEMPTS", 2)
    monkeypatch.setattr(time, "sleep", lambda s: None)
    monkeypatch.setattr(storage, "write_bytes_if", lambda u, data, etag: tries.append(etag) or False)
    with pytest.raises(PlatformError, match=rf"^{re.escape(uri)}: other writers changed the file on each of 2 "
                                            r"attempts to add completions; retry later$"):
        folder.add_samples(out, {**OBJECT_PROBLEM, "completions": ["a", "b"]}, "bench")
    assert len(tries) == 2 and storage.read_json(uri)["completions"] == ["a"]


def test_on_object_storage_without_conditional_writes_a_file_is_written_plainly(s3_bucket, monkeypatch, caplog):
    from multiplt import storage

    def unsupported(uri, data, etag):
        raise storage.ConditionalWriteUnsupported("the server does not support conditional writes")

    out = f"{s3_bucket}/run"
    folder.write_problem(out, {**OBJECT_PROBLEM, "completions": ["a"]})
    monkeypatch.setattr(storage, "write_bytes_if", unsupported)
    with caplog.at_level(logging.WARNING, logger="multiplt.generation"):
        assert folder.add_samples(out, {**OBJECT_PROBLEM, "completions": ["x", "b"]}, "bench") == (["a", "b"], {}, True)
        # nothing to add: no write, so no warning either
        assert folder.add_samples(out, {**OBJECT_PROBLEM, "completions": ["a"]}, "bench") == (["a", "b"], {}, False)
    assert storage.read_json(folder.problem_uri(out, "P")) == {**OBJECT_PROBLEM, "completions": ["a", "b"]}
    assert len([r for r in caplog.records if f"two generates into {out} at once" in r.message]) == 1
