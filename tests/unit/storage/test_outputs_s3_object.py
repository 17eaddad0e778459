"""An output folder on S3 that names an existing object is refused before any work, as a local
file is: S3 would take keys below the object, leaving `x.jsonl` and `x.jsonl/...` side by side in
the bucket (no local tree can hold both, so the bucket can no longer be downloaded)."""

import pytest

from multiplt import cli, storage
from multiplt.errors import MultipltError
from multiplt.storage.outputs import check_out
from tests.unit.storage.test_outputs import COMMANDS


def test_is_file_tells_an_object_from_a_folder(s3_bucket, tmp_path):
    obj = storage.join(s3_bucket, "data", "x.jsonl")
    storage.write_text(obj, "{}\n")
    assert storage.is_file(obj)
    assert not storage.is_file(storage.join(s3_bucket, "data"))  # a prefix, no object
    assert not storage.is_file(storage.join(s3_bucket, "data") + "/")
    assert not storage.is_file(s3_bucket)
    assert not storage.is_file(storage.join(s3_bucket, "missing.jsonl"))
    assert not storage.is_file("s3://no-such-bucket-multiplt/x.jsonl")
    (tmp_path / "f").write_text("x")
    assert storage.is_file(str(tmp_path / "f")) and storage.is_file(f"file://{tmp_path}/f")
    assert not storage.is_file(str(tmp_path)) and not storage.is_file(str(tmp_path / "none"))


def test_check_out_refuses_an_object_and_keeps_folders(s3_bucket):
    obj = storage.join(s3_bucket, "bench", "he-lua.jsonl")
    storage.write_text(obj, "{}\n")
    with pytest.raises(MultipltError, match=rf"^--out {obj} is a file; give a folder$"):
        check_out(obj)
    with pytest.raises(MultipltError, match=rf"^--benchmarks {obj} is a file; give a folder$"):
        check_out(obj, flag="--benchmarks")
    with pytest.raises(MultipltError, match=rf"^{obj} is a file; give a folder$"):
        check_out(obj, flag=None)
    storage.write_text(storage.join(s3_bucket, "runs", "a", "f.json"), "{}")
    for ok in (s3_bucket, storage.join(s3_bucket, "bench"), storage.join(s3_bucket, "runs", "a"),
               storage.join(s3_bucket, "new")):
        check_out(ok)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_object_as_output_folder_is_refused_first(s3_bucket, tmp_path, monkeypatch, capsys, command):
    """generate, train, execute, evaluate, ... exited 0 and wrote `<object>/...`."""
    monkeypatch.chdir(tmp_path)
    obj = storage.join(s3_bucket, "data", "lua_small.jsonl")
    storage.write_text(obj, '{"content": "x"}\n')
    argv, flag = COMMANDS[command]
    assert cli.main([*argv, flag, obj]) == 2
    err = capsys.readouterr().err
    assert err == f"multiplt {argv[0]}: error: {flag} {obj} is a file; give a folder\n", err
    assert storage.ls(s3_bucket, recursive=True) == [obj]  # nothing written below it
    assert storage.read_text(obj) == '{"content": "x"}\n'
    assert list(tmp_path.iterdir()) == []


def test_evaluate_refuses_an_object_as_benchmarks_folder(s3_bucket, tmp_path, monkeypatch, capsys):
    """It built the benchmark into `<object>/humaneval-lua.jsonl`."""
    monkeypatch.chdir(tmp_path)
    obj = storage.join(s3_bucket, "bench", "humaneval-lua.jsonl")
    storage.write_text(obj, "{}\n")
    argv = ["evaluate", "--lang", "lua", "--backend", "replay", "--replay-source", "r",
            "--out", storage.join(s3_bucket, "eval"), "--benchmarks", obj]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == f"multiplt evaluate: error: --benchmarks {obj} is a file; give a folder\n"
    assert storage.ls(s3_bucket, recursive=True) == [obj]
