"""Off a terminal (stderr redirected to a file, as in an Airflow task or container log) a command
writes newline-terminated lines only (README, "The command line"): no "\\r" redraws and no cursor
moves from the Hugging Face libraries' progress bars (transformers' "Loading weights" and
"Writing model shards", nested in evaluate's bar with ESC[A), and no bare third-party warning
lines (accelerate's "[RANK 0] Removed shared tensor ..." at every saved epoch)."""

import json
import os
import subprocess
import sys

import pytest

from tests.integration.test_train import racket_documents

pytestmark = pytest.mark.slow


def run_redirected(tmp_path, *argv) -> str:
    """`multiplt ARGV` with stderr redirected to a file and the Hugging Face progress switches
    unset, as a user's shell has them; its stderr, as bytes decoded ("\\r" kept)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS")}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    err_path = tmp_path / "stderr.log"
    with open(err_path, "wb") as err:
        result = subprocess.run([sys.executable, "-m", "multiplt", *argv], stdout=subprocess.DEVNULL,
                                stderr=err, env=env, cwd=tmp_path)
    text = err_path.read_bytes().decode()
    assert result.returncode == 0, text
    return text


def only_lines(err: str) -> None:
    assert "\r" not in err and "\x1b" not in err, repr(err)
    assert "Loading weights" not in err and "Writing model shards" not in err, err
    assert err.endswith("\n") and "\n\n" not in err, repr(err)


def test_evaluate_of_the_tiny_model_writes_lines_only(tiny_model, tmp_path):
    err = run_redirected(tmp_path, "evaluate", "--lang", "lua", "--out", str(tmp_path / "ev"),
                         "--model", tiny_model, "--n", "1", "--max-new-tokens", "4", "--limit", "1",
                         "--workers", "1")
    only_lines(err)
    assert "generate: 100%" in err  # multiplt's own bars stay, as lines


def test_train_of_the_tiny_model_writes_lines_only(tiny_model, tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"content": d}) + "\n" for d in racket_documents(40)))
    args = ["train", "--dataset", str(data), "--base", tiny_model, "--lang", "rkt", "--experiment", "x",
            "--epochs", "2", "--seq-len", "64", "--batch-size", "4", "--micro-batch-size", "2",
            "--warmup-steps", "1", "--eval-fraction", "0.1"]
    err = run_redirected(tmp_path, *args, "--out", str(tmp_path / "t"))
    only_lines(err)
    assert "Removed shared tensor" not in err, err
    assert "checkpoint rkt-x-epoch2 (epoch 2, step" in err
    # with -v it is a DEBUG line of the log, prefixed like every other
    err = run_redirected(tmp_path, "-v", *args, "--epochs", "1", "--out", str(tmp_path / "v"))
    only_lines(err)
    noise = [line for line in err.splitlines() if "Removed shared tensor" in line]
    assert noise and all(" DEBUG accelerate.utils.other: [RANK 0] Removed shared tensor " in line
                         for line in noise), err
