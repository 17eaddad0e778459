"""Issue 21 on CPUs: bench/train_15b_fsdp.py (the StarCoderBase-15B FSDP benchmark) in a tiny shape,
2 processes over gloo. The CLI runs with `--distributed fsdp`, which accelerate runs as MULTI_CPU
(plain data parallel: its FSDP needs GPUs), so this checks the benchmark's machinery: exact step
count, the uninterrupted run, the SIGKILLed-and-resumed run, and the weight comparison. The
meta-device plan counts the real 15B shape's parameters."""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import time

import psutil
import pytest
import torch

REPO = pathlib.Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "train_15b_fsdp.py"
TINY = ["--layers", "2", "--width", "64", "--heads", "4", "--vocab", "1024", "--positions", "256",
        "--seq-len", "64", "--batch-size", "4", "--steps", "6"]


def load_bench():
    sys.path.insert(0, str(REPO / "bench"))
    spec = importlib.util.spec_from_file_location("train_15b_fsdp", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_tiny_shape_two_cpu_processes_resume_exactly(tiny_model, tmp_path):
    out = tmp_path / "res" / "train_15b_fsdp.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, str(BENCH), "--cpu", "--nproc", "2", *TINY, "--timeout", "400",
                           "--tokenizer", tiny_model, "--work", str(tmp_path / "work"),
                           "--state-dir", str(tmp_path / "states"), "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = json.loads(out.read_text())
    assert record["data"]["steps_per_epoch"] == 3
    unint, resumed = record["uninterrupted"], record["resume"]
    assert unint["processes_logged"] == [0, 1] and resumed["processes_logged"] == [0, 1]
    assert unint["accelerate_distributed_type"] == ["MULTI_CPU"]  # accelerate's FSDP needs GPUs
    assert [r["step"] for r in unint["manifest"]] == [3, 6]
    assert resumed["first"]["killed"] and resumed["first"]["returncode"] != 0
    assert resumed["resumed"] and resumed["manifest"][-1]["run_start_step"] == 3
    assert unint["tokens_per_s"] > 0 and len(unint["run"]["peak_rss_per_process_gib"]) == 2
    cmp = record["resume_vs_uninterrupted"]
    assert cmp["bf16_equal_within_rounding"] and cmp["fp32_state_max_abs_diff"] == 0.0
    assert record["summary"]["ok"]
    # the training states lived in --state-dir (linked from each run's OUT/state); older ones pruned
    assert os.path.islink(tmp_path / "work" / "out-resume" / "state")
    assert os.listdir(tmp_path / "states" / "resume") == ["py-fsdp15b-epoch2"]
    # the run's model has the shape asked for
    config = json.loads((tmp_path / "work" / "model" / "config.json").read_text())
    assert (config["n_layer"], config["n_embd"], config["vocab_size"], config["multi_query"]) == (2, 64, 1024, True)


def _checkpoint(folder, tensors):
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    save_file(tensors, str(folder / "model.safetensors"))


def test_compare_accepts_one_bf16_ulp_and_rejects_more(tmp_path):
    bench = load_bench()
    tag = "py-fsdp15b-epoch2"
    w = torch.tensor([1.0, -3.0, 0.5, 0.0], dtype=torch.bfloat16)
    one_ulp = torch.tensor([1.0078125, -3.0, 0.5, 0.0], dtype=torch.bfloat16)  # 1 + 2^-7
    two_ulps = torch.tensor([1.015625, -3.0, 0.5, 0.0], dtype=torch.bfloat16)
    for name, t in (("a", w), ("b", one_ulp), ("c", two_ulps)):
        _checkpoint(tmp_path / name / "checkpoints" / tag, {"w": t})
    assert bench.compare(str(tmp_path / "a"), str(tmp_path / "a"), tag)["bf16_max_ulps"] == 0.0
    near = bench.compare(str(tmp_path / "a"), str(tmp_path / "b"), tag)
    assert near["bf16_equal_within_rounding"] and near["bf16_elements_differing"] == 1
    assert not bench.compare(str(tmp_path / "a"), str(tmp_path / "c"), tag)["bf16_equal_within_rounding"]


def test_plan_counts_the_15b_shape_on_the_meta_device():
    from fsdp_plan import block_parameters, count_parameters, plan
    from transformers import AutoModelForCausalLM

    bench = load_bench()
    args = type("A", (), dict(layers=40, width=6144, heads=48, vocab=49152, positions=8192))()
    config = bench.model_config(args)
    n = count_parameters(config)
    assert n == 15_517_456_384  # StarCoderBase-15B's 15.5B
    record = plan(config, n, [4, 8], 2048, 32)
    assert record["model"]["parameters_outside_blocks"] == 49152 * 6144 + 8192 * 6144 + 2 * 6144
    eight = record["per_gpu_count"]["8"]
    assert eight["gradient_accumulation"] == 4
    assert eight["gpu_gib"]["adamw_moments_shard"] == round(8 * n / 8 / 1024 ** 3, 2)
    assert record["per_gpu_count"]["4"]["gpu_gib_total"] > eight["gpu_gib_total"]
    # the per-block count the plan uses matches a real (small) model's
    small = bench.model_config(type("A", (), dict(layers=3, width=64, heads=4, vocab=100, positions=32))())
    model = AutoModelForCausalLM.from_config(small)
    assert sum(p.numel() for p in model.transformer.h[0].parameters()) == block_parameters(small)
    assert count_parameters(small) == model.num_parameters()


def test_the_memory_poller_counts_training_processes_not_their_forks():
    """A process a training process forks keeps its command line; the per-process peaks must not
    count it as another training process (a CI run once saw 3 peaks for 2 processes). The poller
    watches a launcher of its own, as the bench watches `accelerate launch`: pytest's own children
    include whatever else runs under it."""
    bench = load_bench()
    code = "import os, time  # multiplt\nif os.fork() == 0:\n    time.sleep(20)\nelse:\n    time.sleep(20)"
    launcher = subprocess.Popen([sys.executable, "-c", "import subprocess, sys; "
                                 "subprocess.run([sys.executable, '-c', sys.argv[1]])", code])
    try:
        for _ in range(200):  # until the training process and its fork exist
            children = psutil.Process(launcher.pid).children()
            kids = psutil.Process(children[0].pid).children() if children else []
            if kids:
                break
            time.sleep(0.05)
        assert kids and "multiplt" in " ".join(kids[0].cmdline())
        poller = bench.MemoryPoller(launcher.pid, cpu=True)
        assert list(poller.sample()) == [children[0].pid]
    finally:
        for p in psutil.Process(launcher.pid).children(recursive=True):
            p.kill()
        launcher.kill()
        launcher.wait()
