"""Output folders checked before any work (multiplt.storage.outputs): `--out` itself must be a
storage URI (the error names it, not a path made from it) and no file; a folder that holds files
must be one the command made. An empty folder (one a runtime created) is new; so is S3."""

import re

import pytest

from multiplt import cli, storage
from multiplt.errors import MultipltError
from multiplt.storage.outputs import check_out, first_file, refuse_foreign

# every command that makes paths below a folder it is given, with the flag naming that folder
COMMANDS = {
    "generate": (["generate", "--benchmark", "b.jsonl", "--backend", "replay", "--replay-source", "r.jsonl"],
                 "--out"),
    "execute": (["execute", "--in", "run"], "--out"),
    "evaluate": (["evaluate", "--lang", "rkt", "--backend", "replay", "--replay-source", "r"], "--out"),
    "corpus build": (["corpus", "build", "--source", "src"], "--out"),
    "corpus dedup": (["corpus", "dedup", "--bucket", "0/1"], "--out"),
    "corpus merge": (["corpus", "merge"], "--out"),
    "testgen": (["testgen", "--functions", "f", "--backend", "replay", "--replay-source", "r.jsonl"], "--out"),
    "translate": (["translate", "--tests", "t", "--lang", "lua", "--backend", "replay", "--replay-source",
                   "r.jsonl"], "--out"),
    "train": (["train", "--dataset", "d.jsonl", "--base", "b", "--lang", "rkt", "--experiment", "x"], "--out"),
    "publish checkpoints": (["publish", "checkpoints", "--repo", "o/m"], "--from"),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("value, why", [
    ("s3://", "no bucket after s3://"),
    ("s3:/x", "did you mean 's3://x'?"),
    ("s3://B/x", "'B' is not a valid S3 bucket name"),
])
def test_a_bad_output_uri_is_named_as_given(tmp_path, monkeypatch, capsys, command, value, why):
    monkeypatch.chdir(tmp_path)
    argv, flag = COMMANDS[command]
    assert cli.main([*argv, flag, value]) == 2
    err = capsys.readouterr().err
    assert f"error: {flag}" in err and f"{value!r}" in err and why in err, err
    # no path made from it (`s3:/_multiplt_run.yaml`, `s3://B/x/manifest.jsonl`) is named instead
    assert set(re.findall(r"'(s3:[^']*)'", err)) <= {value, "s3://x"}, err
    assert err.count("error:") == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_file_as_output_folder_is_refused_first(tmp_path, monkeypatch, capsys, command):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    argv, flag = COMMANDS[command]
    assert cli.main([*argv, flag, "afile"]) == 2
    assert f"error: {flag} " in capsys.readouterr().err
    assert cli.main([*argv, flag, "afile/sub"]) == 2
    assert "afile is a file, not a folder" in capsys.readouterr().err
    assert (tmp_path / "afile").read_text() == "x" and len(list(tmp_path.iterdir())) == 1


def test_check_out_accepts_folders_new_or_not(tmp_path):
    (tmp_path / "dir").mkdir()
    for ok in (tmp_path / "dir", tmp_path / "new" / "deeper", f"file://{tmp_path}/dir"):  # S3: test_outputs_s3_object
        check_out(str(ok))
    (tmp_path / "f").write_text("x")
    with pytest.raises(MultipltError, match=r"^--out .*/f is a file; give a folder$"):
        check_out(str(tmp_path / "f"))
    with pytest.raises(MultipltError, match=r"^--in: bad storage URI 's3://'"):
        check_out("s3://", "--in")


def test_empty_folders_are_new_and_a_file_is_named(tmp_path):
    out = tmp_path / "out"
    assert first_file(str(out)) is None  # missing
    (out / "a" / "b").mkdir(parents=True)
    (out / "c").mkdir()
    assert first_file(str(out)) is None  # only empty folders: what a runtime may create
    refuse_foreign(str(out), lambda: False)
    (out / "a" / "b" / "deep.txt").write_text("x")
    (out / "c" / "mine.parquet").write_text("x")
    assert first_file(str(out)) == "c/mine.parquet"  # a shallowest one
    with pytest.raises(MultipltError, match=r"^--out .*/out holds files this command did not write \(e.g. "
                                            r"c/mine.parquet\); use an empty or new folder$"):
        refuse_foreign(str(out), lambda: False)
    refuse_foreign(str(out), lambda: True)  # its marker is there: a folder it made


def test_s3_folders(s3_bucket):
    out = storage.join(s3_bucket, "runs", "x")
    refuse_foreign(out, lambda: False)  # nothing there yet
    storage.write_text(storage.join(s3_bucket, "runs", "x-other.txt"), "a sibling, not inside")
    refuse_foreign(out, lambda: False)
    storage.write_text(storage.join(out, "tests", "mine.parquet"), "x")
    assert first_file(out) == "tests/mine.parquet"
    with pytest.raises(MultipltError, match=r"holds files this command did not write \(e.g. tests/mine.parquet\)"):
        refuse_foreign(out, lambda: False)
    refuse_foreign(out, lambda: True)
    check_out(out)
