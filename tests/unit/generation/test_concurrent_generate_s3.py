"""Two generates writing one folder on object storage at once, where no lock keeps them apart:
the one that started with the folder still empty is not refused for the other's files, and
the run record keeps every run's problems (a conditional write, merged again when the record
changed in between).

The interleavings are made deterministic by running the second generate from inside the first
one's read of the run record, where a real second process could write."""

from multiplt import storage
from multiplt.evaluation.run_folder import RUN_FILE, completion_counts
from multiplt.generation import folder

from tests.unit.generation.test_driver_replay import run

PROBLEMS = ["HumanEval_0_f", "HumanEval_1_f", "HumanEval_2_f"]


def other_after_read(monkeypatch, other, *, within=None):
    """The first read of the run record (folder.read_run, or storage.read_versioned of the
    record: a conditional write's read), inside the first call of `within`, a folder function,
    when given, returns what it read (or raises that none is there), but only after `other()`,
    another generate into the folder, has run to its end."""
    state = {"raced": False, "inside": within is None}

    def racing(real):
        def read(uri, *args):
            try:
                return real(uri, *args)  # a missing record: read_versioned's NotFound
            finally:
                if state["inside"] and not state["raced"] and (
                        real is not real_versioned or storage.basename(uri) == RUN_FILE):
                    state["raced"] = True
                    other()
        return read

    real_versioned = storage.read_versioned
    monkeypatch.setattr(folder, "read_run", racing(folder.read_run))
    monkeypatch.setattr(storage, "read_versioned", racing(real_versioned))
    if within is not None:
        real_within = getattr(folder, within)

        def wrapped(*args, **kwargs):
            state["inside"] = not state["raced"]
            try:
                return real_within(*args, **kwargs)
            finally:
                state["inside"] = False

        monkeypatch.setattr(folder, within, wrapped)
    return state


def test_a_generate_begun_beside_another_into_a_new_folder_is_not_refused(bench, s3_bucket, monkeypatch):
    """Both found no run record; the other one wrote its record and problem files before this
    one listed the folder. Those files are not foreign: the record is there by then, so it is
    checked and merged, and this run finds every sample already there."""
    out = f"{s3_bucket}/gen/S1"
    state = other_after_read(monkeypatch, lambda: run(bench, out, n=2))
    summary = run(bench, out, n=2)
    assert state["raced"]
    assert summary["generated"] == 0 and completion_counts(out) == {p: 2 for p in PROBLEMS}
    record = folder.read_run(out)
    assert record["problems"] == PROBLEMS and record["complete"] is True


def test_the_run_record_keeps_the_problems_of_a_generate_that_wrote_it_meanwhile(bench, s3_bucket,
                                                                                 monkeypatch):
    """This generate read the record to write it (its first samples), then the other, of other
    --problems, wrote its record and files and finished; this write is conditional on the
    version read, so it fails and is merged again: the record lists both runs' problems, and
    complete is true once every one of them holds n."""
    out = f"{s3_bucket}/gen/S2"
    state = other_after_read(monkeypatch, lambda: run(bench, out, n=2, problems=PROBLEMS[1:]),
                             within="write_run")
    run(bench, out, n=2, problems=PROBLEMS[:1])
    assert state["raced"]
    assert completion_counts(out) == {p: 2 for p in PROBLEMS}
    record = folder.read_run(out)
    assert sorted(record["problems"]) == PROBLEMS
    assert record["selection"] == "" and record["complete"] is True  # all of the file


def test_finish_decides_complete_over_a_record_written_after_it_read_the_files(s3_bucket, monkeypatch):
    """finish read the record and found its one problem whole; before it wrote `complete: true`,
    another generate added a problem that has no file yet (its record comes before its
    samples). The write over that record fails, and complete is decided again over it: false."""
    out = f"{s3_bucket}/gen/S3"
    base = {"language": "py", "prompt": "def f():\n", "tests": "assert True\n",
            "stop_tokens": ["\ndef"], "temperature": 0.2, "top_p": 0.95, "max_tokens": 64}
    run_fields = {"model": "m", "n": 1, "temperature": 0.2, "top_p": 0.95}
    folder.write_run(out, {**run_fields, "complete": False, "problems": ["A"]})
    folder.write_problem(out, {**base, "name": "A", "completions": ["a"]})
    other = lambda: folder.write_run(out, {**run_fields, "complete": False, "problems": ["B"]})  # noqa: E731
    state = other_after_read(monkeypatch, other, within="finish")
    short = folder.finish(out, ["A"])
    assert state["raced"] and short == [("B", 0, 1)]
    record = folder.read_run(out)
    assert record["problems"] == ["A", "B"] and record["complete"] is False
    assert storage.exists(folder.problem_uri(out, "A"))


def test_on_a_server_without_conditional_writes_the_record_is_written_plainly(s3_bucket, monkeypatch,
                                                                              caplog):
    import logging

    def unsupported(uri, data, etag):
        raise storage.ConditionalWriteUnsupported("the server does not support conditional writes")

    out = f"{s3_bucket}/gen/S4"
    monkeypatch.setattr(storage, "write_bytes_if", unsupported)
    with caplog.at_level(logging.WARNING, logger="multiplt.generation"):
        folder.write_run(out, {"model": "m", "n": 1, "problems": ["A"]})
        folder.write_run(out, {"model": "m", "n": 2, "problems": ["B"]})
    assert folder.read_run(out) == {"model": "m", "n": 2, "problems": ["A", "B"]}
    # warned once for the folder (storage.update's `unsupported`), not at every write
    warned = [r.getMessage() for r in caplog.records if "may lose one's problems" in r.getMessage()]
    assert warned == [f"{out}/_multiplt_run.yaml: the server does not support conditional writes; "
                      f"written without it: two generates into {out} at once may lose one's "
                      "problems from the record"]
