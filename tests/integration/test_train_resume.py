"""Issue 6, point 4: exact resume. A tiny CPU run is killed (SIGKILL, no cleanup) right after its
epoch-1 checkpoint is committed; rerunning the same command resumes from that checkpoint at step
`steps_per_epoch` (logged, and recorded in the manifest), and its final weights match an
uninterrupted run with the same seed within 1e-5."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from multiplt import storage
from multiplt.storage import manifest

pytestmark = pytest.mark.slow

ENV = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")  # 1 thread: fast on busy CI cores


def racket_documents(n: int = 300, seed: int = 0) -> list[str]:
    r = random.Random(seed)
    return [f"#lang racket\n(define (f{i} x)\n  (if (< x {r.randint(1, 50)}) (+ x 1) (* x {r.randint(2, 9)})))\n"
            for i in range(n)]


def train_cmd(data, base, out, precision="auto"):
    # dropout on, so the restored RNG state matters too
    return [sys.executable, "-m", "multiplt", "train", "--dataset", data, "--base", base, "--lang",
            "rkt", "--experiment", "resume", "--out", out, "--epochs", "2", "--seq-len", "64",
            "--batch-size", "4", "--micro-batch-size", "2", "--warmup-steps", "2", "--lr", "1e-3",
            "--eval-fraction", "0.05", "--seed", "7", "--precision", precision]


def with_dropout(tiny_model, tmp_path):
    from transformers import AutoConfig

    import shutil

    base = tmp_path / "base"
    shutil.copytree(tiny_model, base)
    config = AutoConfig.from_pretrained(base)
    config.resid_pdrop = config.embd_pdrop = config.attn_pdrop = 0.1
    config.save_pretrained(base)
    return str(base)


# auto: fp32 on the CPU. bf16-master (bf16 weights, fp32 master weights inside the optimizer's
# state, multiplt/training/master.py) runs on the CPU too.
@pytest.mark.parametrize("precision", ["auto", "bf16-master"])
def test_killed_run_resumes_exactly(tiny_model, tmp_path, precision):
    import torch
    from safetensors.torch import load_file

    base = with_dropout(tiny_model, tmp_path)
    data = str(tmp_path / "racket.jsonl")
    storage.write_jsonl(data, [{"content": d} for d in racket_documents(180)])
    ref_out, out = str(tmp_path / "uninterrupted"), str(tmp_path / "killed")

    reference = subprocess.Popen(train_cmd(data, base, ref_out, precision), env=ENV, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
    victim = subprocess.Popen(train_cmd(data, base, out, precision), env=ENV, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not manifest.read(out):  # kill as soon as the epoch-1 checkpoint is committed
        assert victim.poll() is None, "the run ended before its first checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    rows = manifest.read(out)
    assert [r["tag"] for r in rows] == ["rkt-resume-epoch1"], "killed too late: epoch 2 finished"
    steps_per_epoch = rows[0]["step"]

    resumed = subprocess.run(train_cmd(data, base, out, precision), env=ENV, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from checkpoint rkt-resume-epoch1 (epoch 1) at step {steps_per_epoch}" in resumed.stderr
    _, ref_err = reference.communicate(timeout=600)
    assert reference.returncode == 0, ref_err[-3000:]

    rows, ref_rows = manifest.read(out), manifest.read(ref_out)
    assert [r["tag"] for r in rows] == ["rkt-resume-epoch1", "rkt-resume-epoch2"]
    assert rows[1]["run_start_step"] == steps_per_epoch and rows[1]["step"] == 2 * steps_per_epoch
    assert ref_rows[1]["run_start_step"] == 0
    assert rows[1]["eval_loss"] == pytest.approx(ref_rows[1]["eval_loss"], abs=1e-5)

    # The full-precision weights of the final state, and the tagged bf16 checkpoints, agree.
    for a, b in [(storage.join(rows[1]["state_uri"], "model.safetensors"),
                  storage.join(ref_rows[1]["state_uri"], "model.safetensors")),
                 (storage.join(rows[1]["uri"], "model.safetensors"),
                  storage.join(ref_rows[1]["uri"], "model.safetensors"))]:
        got, want = load_file(storage.local_path(a)), load_file(storage.local_path(b))
        assert got.keys() == want.keys()
        worst = max((got[k].float() - want[k].float()).abs().max().item() for k in got)
        assert worst <= 1e-5, f"{a}: max abs weight difference {worst}"
    if precision == "bf16-master":  # the fp32 master weights (in the optimizer's state) agree too
        got, want = [torch.load(storage.local_path(storage.join(r[1]["state_uri"], "optimizer.bin")),
                                weights_only=True) for r in (rows, ref_rows)]
        assert got["format"] == "multiplt-master-adamw-1"
        for i in want["state"]:
            for name in ("master", "exp_avg", "exp_avg_sq"):
                worst = (got["state"][i][name] - want["state"][i][name]).abs().max().item()
                assert worst <= 1e-5, f"optimizer {name}: max abs difference {worst}"
        final = load_file(storage.local_path(storage.join(rows[1]["uri"], "model.safetensors")))
        assert all(v.dtype == torch.bfloat16 for v in final.values())
    # Against the base model the weights did move (the comparison above is not vacuous).
    start = load_file(os.path.join(base, "model.safetensors"))
    final = load_file(storage.local_path(storage.join(rows[1]["state_uri"], "model.safetensors")))
    assert max((final[k] - start[k]).abs().max().item() for k in final if k in start) > 1e-3
