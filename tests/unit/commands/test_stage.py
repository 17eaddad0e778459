"""`multiplt stage in|run|out`: the docker runtime's sandbox steps (networked in/out around an
offline run), exercised on file:// URIs."""

from __future__ import annotations

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
