"""`multiplt stage in|run|out`: the docker runtime's sandbox steps (networked in/out around an
offline run), exercised on file:// URIs."""

from __future__ import annotations

import os
import subprocess
import sys

from multiplt.commands import stage


def _multiplt(*args):
    return subprocess.run([sys.executable, "-m", "multiplt", *args], capture_output=True, text=True)


def test_uris_map_to_the_same_local_paths_in_every_step(tmp_path):
    argv = ["execute", "--in", "s3://b/run", "--out=file:///data/x.jsonl", "--shard", "1/4"]
    assert stage.uris_in(argv) == ["s3://b/run", "file:///data/x.jsonl"]
    local = stage.rewrite(argv, str(tmp_path))
    assert local[:2] == ["execute", "--in"] and local[4:] == ["--shard", "1/4"]
    assert local[2] == stage.local_for(str(tmp_path), "s3://b/run") and local[2].endswith("/run")
    assert local[3] == "--out=" + stage.local_for(str(tmp_path), "file:///data/x.jsonl")
    assert stage.rewrite(argv, str(tmp_path)) == local


def test_stage_in_then_out_uploads_only_new_or_changed_files(tmp_path):
    run = tmp_path / "store" / "run"
    run.mkdir(parents=True)
    (run / "a.json.gz").write_bytes(b"input a")
    (run / "b.json.gz").write_bytes(b"input b")
    root = tmp_path / "stage"
    root.mkdir()
    uri = f"file://{run}"
    argv = ["execute", "--in", uri, "--out", f"file://{tmp_path}/store/new-output"]

    r = _multiplt("stage", "in", "--root", str(root), "--", *argv)
    assert r.returncode == 0, r.stderr
    local = stage.local_for(str(root), uri)
    assert sorted(p.name for p in (root / local).parent.joinpath("run").iterdir()) == ["a.json.gz", "b.json.gz"]

    # what the offline run would do: write results next to its inputs and a new output file
    (tmp_path / "stage" / local / "a.results.json.gz").write_bytes(b"result a")
    out_local = stage.local_for(str(root), f"file://{tmp_path}/store/new-output")
    open(out_local, "wb").write(b"fresh")
    (run / "b.json.gz").write_bytes(b"changed upstream meanwhile")  # must not be overwritten

    r = _multiplt("stage", "out", "--root", str(root), "--", *argv)
    assert r.returncode == 0, r.stderr
    assert (run / "a.results.json.gz").read_bytes() == b"result a"
    assert (run / "b.json.gz").read_bytes() == b"changed upstream meanwhile"
    assert (tmp_path / "store" / "new-output").read_bytes() == b"fresh"


def test_stage_run_executes_multiplt_and_out_needs_in_first(tmp_path):
    r = _multiplt("stage", "run", "--root", str(tmp_path), "--", "--version")
    assert r.returncode == 0 and r.stdout.startswith("multiplt ")
    r = _multiplt("stage", "out", "--root", str(tmp_path), "--", "score", "--in", "s3://b/x")
    assert r.returncode == 2 and "stage in" in r.stderr
    r = _multiplt("stage", "in", "--root", str(tmp_path / "missing"), "--", "x")
    assert r.returncode == 2 and "not a folder" in r.stderr


def test_a_corrupt_stage_manifest_is_a_clear_error_naming_it(tmp_path, capsys):
    from multiplt import cli

    manifest = tmp_path / stage.MANIFEST
    for text in ("{bad", "[1]", '{"file:///x": 3}'):
        manifest.write_text(text)
        assert cli.main(["stage", "out", "--root", str(tmp_path), "--", "execute", "--in", "file:///x"]) == 2
        err = capsys.readouterr().err
        assert f"{manifest} is not a" in err and "stage manifest" in err and err.count("\n") == 1


def test_a_uri_of_another_scheme_is_an_error_in_every_step(tmp_path):
    import pytest

    from multiplt.errors import MultipltError

    for argv in (["execute", "--in", "foo://x"], ["execute", "--out=ftp://host/x"]):
        with pytest.raises(MultipltError, match=r"cannot stage (foo://x|ftp://host/x): unsupported scheme"):
            stage.stage_in(argv, str(tmp_path))
        with pytest.raises(MultipltError, match="unsupported scheme"):
            stage.rewrite(argv, str(tmp_path))
    assert list(tmp_path.iterdir()) == []  # no manifest: nothing was staged
    assert stage.uris_in(["--model", "org/name", "--lang=rkt"]) == []
    # a teacher server's URL and a Hub dataset are arguments, not storage: they pass as they are
    passed = ["testgen", "--api-base", "http://gpu-host:8000/v1", "--source=hf://datasets/o/n"]
    assert stage.uris_in(passed) == [] and stage.rewrite(passed, str(tmp_path)) == passed


def test_a_failed_stage_in_leaves_no_folders(tmp_path, monkeypatch):
    import pytest

    from multiplt import storage
    from multiplt.errors import MultipltError

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.json.gz").write_bytes(b"a")
    root = tmp_path / "stage"
    root.mkdir()
    real_ls = storage.ls

    def ls(uri, **kwargs):
        if uri.startswith("s3://"):
            raise MultipltError(f"no AWS credentials to list {uri}")
        return real_ls(uri, **kwargs)

    monkeypatch.setattr(storage, "ls", ls)
    with pytest.raises(MultipltError, match="no AWS credentials"):
        stage.stage_in(["execute", "--in", f"file://{src}", "--out", "s3://bucket/run"], str(root))
    assert list(root.iterdir()) == []  # neither the file:// download nor an empty s3:// folder

    def broken_download(uri, local):
        os.makedirs(local)
        open(os.path.join(local, "half"), "wb").close()
        raise OSError("connection reset")

    monkeypatch.setattr(storage, "ls", lambda uri, **kwargs: [uri + "/x"])
    monkeypatch.setattr(storage, "download_dir", broken_download)
    with pytest.raises(OSError):
        stage.stage_in(["execute", "--in", "s3://bucket/run"], str(root))
    assert list(root.iterdir()) == []


def test_a_mistyped_uri_is_an_error_in_every_step(tmp_path, capsys):
    """`s3:/b/x` would be staged as nothing (a relative path) and fail only in the offline run."""
    import pytest

    from multiplt import cli
    from multiplt.errors import MultipltError

    for value, meant in (("s3:/b/x", "s3://b/x"), ("file:relative", "file:///relative"),
                         ("s3//b/x", "s3://b/x")):
        for argv in (["execute", "--in", value], ["execute", f"--out={value}"]):
            with pytest.raises(MultipltError, match=f"cannot stage {value}: a mistyped URI.*{meant}"):
                stage.stage_in(argv, str(tmp_path))
            with pytest.raises(MultipltError, match="a mistyped URI"):
                stage.rewrite(argv, str(tmp_path))
        assert cli.main(["stage", "in", "--root", str(tmp_path), "--", "execute", "--in", value]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"multiplt stage: error: cannot stage {value}:") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # no manifest: nothing was staged
    # a local path written as such, and mistyped forms of the URLs that pass, are not staged
    kept = ["execute", "--in", "./s3:/x", "--api-base", "http:/host", "--model", "hf:org/name"]
    assert stage.uris_in(kept) == [] and stage.rewrite(kept, str(tmp_path)) == kept


def test_a_read_only_stage_root_is_one_clear_error(tmp_path, capsys, monkeypatch):
    """Root ignores permission bits, so the read-only file system is injected where the staged
    folder, then the manifest, is created (as tests/unit/storage/test_local_write_errors.py does)."""
    import builtins
    import errno
    import tempfile

    from multiplt import cli

    src = tmp_path / "src"
    src.mkdir()
    root = tmp_path / "stage"
    root.mkdir()
    real_open = builtins.open

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    def open_refusing_root(file, mode="r", *args, **kwargs):
        if str(file).startswith(str(root)) and mode != "r":
            refuse()
        return real_open(file, mode, *args, **kwargs)

    uri = f"file://{src}"
    for refused, argv, path in (
            ([(os, "makedirs")], ["execute", "--in", uri], stage.local_for(str(root), uri)),
            ([(tempfile, "mkstemp"), (builtins, "open")], ["execute", "--model", "org/name"],
             str(root / stage.MANIFEST))):
        for module, function in refused:
            monkeypatch.setattr(module, function, open_refusing_root if function == "open" else refuse)
        assert cli.main(["stage", "in", "--root", str(root), "--", *argv]) == 2
        assert capsys.readouterr().err == f"multiplt stage: error: cannot write {path}: Read-only file system\n"
        monkeypatch.undo()
        assert list(root.iterdir()) == []
