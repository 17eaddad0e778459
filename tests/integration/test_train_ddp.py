"""Issue 6, point 5, on the CPU: the same `multiplt train` command under torchrun with 2 processes
(DDP over gloo) shards every global batch across the processes and gives the results of a
1-process run (same effective batch, same data order), with RNG state saved per process."""

import os
import random
import shutil
import subprocess
import sys

import pytest

from multiplt import storage
from multiplt.storage import manifest

pytestmark = pytest.mark.slow


def test_two_process_ddp_matches_one_process(tiny_model, tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if torchrun is None:
        pytest.skip("torchrun is not installed beside this Python")
    r = random.Random(1)
    data = str(tmp_path / "racket.jsonl")
    storage.write_jsonl(data, [{"content": f"#lang racket\n(define (g{i} x) (* x {r.randint(2, 99)}))\n"}
                               for i in range(200)])
    args = ["--dataset", data, "--base", tiny_model, "--lang", "rkt", "--experiment", "ddp",
            "--epochs", "1", "--seq-len", "64", "--batch-size", "4", "--micro-batch-size", "2",
            "--warmup-steps", "2", "--lr", "1e-3", "--eval-fraction", "0.05"]
    env = dict(os.environ, OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="1", HF_HUB_OFFLINE="1")
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    single = subprocess.Popen([sys.executable, "-m", "multiplt", "train", *args, "--out", one], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ddp = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", str(29500 + os.getpid() % 1000),
                          "-m", "multiplt", "train", *args, "--out", two], env=env, capture_output=True, text=True)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert "accumulation 1 x 2 processes" in ddp.stderr
    _, err = single.communicate(timeout=600)
    assert single.returncode == 0, err[-3000:]
    assert "accumulation 2 x 1 processes" in err

    (row1,), (row2,) = manifest.read(one), manifest.read(two)
    assert row1["step"] == row2["step"]
    assert row2["eval_loss"] == pytest.approx(row1["eval_loss"], abs=1e-5)
    state = {storage.basename(u) for u in storage.ls(row2["state_uri"])}
    assert {"random_states_0.pkl", "random_states_1.pkl"} <= state
    assert storage.ls(storage.join(two, "checkpoints")) == [storage.join(two, "checkpoints/rkt-ddp-epoch1/")]


def test_only_the_main_process_asks_the_hub_for_the_base_commit(test_hub, tiny_model, tmp_path):
    """A Hub base under DDP: the main process alone resolves `main` to a commit (one request for
    2 processes, so a transient 429 on another process cannot fail the run) and every process
    loads that commit."""
    import pathlib

    import yaml

    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if torchrun is None:
        pytest.skip("torchrun is not installed beside this Python")
    repo = test_hub.add_model("ns/tiny")
    with test_hub.lock:
        files = {p.name: (p.read_bytes(), False) for p in pathlib.Path(tiny_model).iterdir() if p.is_file()}
        head = repo.commits[repo.branches["main"]]
        commit = repo.commit(head.oid, {**head.files, **files}, "the tiny model")
        repo.branches["main"] = commit.oid
    data = str(tmp_path / "racket.jsonl")
    storage.write_jsonl(data, [{"content": f"#lang racket\n(define (g{i} x) (* x {i}))\n"} for i in range(40)])
    out = str(tmp_path / "out")
    env = dict(os.environ, OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="1")
    ddp = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", str(30500 + os.getpid() % 1000),
                          "-m", "multiplt", "train", "--dataset", data, "--base", "ns/tiny", "--lang", "rkt",
                          "--experiment", "ddp", "--epochs", "1", "--seq-len", "64", "--batch-size", "4",
                          "--micro-batch-size", "2", "--warmup-steps", "1", "--out", out],
                         env=env, capture_output=True, text=True)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    asked = [path for method, path in test_hub.requests if path.split("?")[0].endswith("/ns/tiny/revision/main")]
    assert len(asked) == 1, test_hub.requests
    run = yaml.safe_load(pathlib.Path(out, "_multiplt_train.yaml").read_text())
    assert run["base_commit"] == commit.oid
