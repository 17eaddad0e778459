"""Issue 6, point 6 (and 1, 3): `multiplt train` fine-tunes the tiny local model for 2 epochs on
the CPU with S3 as storage; the loss goes down; two tagged checkpoints are in the manifest; each
loads with from_pretrained (bf16) and generates; `multiplt generate` loads them by URI and by tag."""

import json
import random

import polars as pl
import pytest
import yaml

from multiplt import cli, storage
from multiplt.storage import manifest

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny shapes run fastest single-threaded, and far faster on shared, busy CI cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

# Short sequences and a high learning rate so two CPU epochs take seconds and clearly learn.
TINY_RECIPE = ["--seq-len", "64", "--batch-size", "4", "--micro-batch-size", "2", "--warmup-steps",
               "2", "--lr", "1e-3", "--eval-fraction", "0.05", "--log-every", "20"]


def racket_documents(n: int = 300, seed: int = 0) -> list[str]:
    """Small Racket functions in the style of the MultiPL-T data (enough for ~50 steps/epoch)."""
    r = random.Random(seed)
    docs = []
    for i in range(n):
        name = r.choice(["add", "sum-list", "count-evens", "my-max", "fact", "fib"]) + str(i)
        k = r.randint(1, 50)
        docs.append(f"#lang racket\n;; {name}: returns a number\n(define ({name} x)\n"
                    f"  (if (< x {k}) (+ x {k}) (* x {r.randint(2, 9)})))\n")
    return docs


def test_two_epochs_tagged_checkpoints_that_load_and_generate(tiny_model, s3_bucket, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data = storage.join(s3_bucket, "datasets/multiplt")
    storage.write_parquet(storage.join(data, "racket.parquet"),
                          pl.DataFrame({"content": racket_documents(), "id": list(range(300))}))
    out = storage.join(s3_bucket, "runs/rkt")
    rc = cli.main(["train", "--dataset", data, "--base", tiny_model, "--lang", "rkt",
                   "--experiment", "multiplt", "--recipe", "starcoderbase-1b", "--out", out,
                   "--epochs", "2", *TINY_RECIPE])
    assert rc == 0

    rows = manifest.read(out)
    assert [r["tag"] for r in rows] == ["rkt-multiplt-epoch1", "rkt-multiplt-epoch2"]
    steps = rows[0]["step"]
    assert steps > 0 and rows[1]["step"] == 2 * steps
    assert all(r["uri"] == storage.join(out, "checkpoints", r["tag"]) for r in rows)
    assert rows[0]["eval_loss"] > rows[1]["eval_loss"]
    assert {rows[0]["lang"], rows[0]["experiment"], rows[0]["base"]} == {"rkt", "multiplt", tiny_model}

    # Training loss goes down: the first steps against the last epoch.
    log1 = storage.read_jsonl(storage.join(out, "logs/epoch1.jsonl"))
    log2 = storage.read_jsonl(storage.join(out, "logs/epoch2.jsonl"))
    first = sum(r["loss"] for r in log1[:5]) / 5
    last = sum(r["loss"] for r in log2[:-1]) / (len(log2) - 1)
    assert last < first - 1.0, (first, last)
    assert log2[-1]["eval_loss"] == rows[1]["eval_loss"]

    # Only the latest checkpoint keeps the (fp32 + optimizer + RNG) training state.
    assert storage.ls(storage.join(out, "state")) == [storage.join(out, "state/rkt-multiplt-epoch2/")]
    state_files = {storage.basename(u) for u in storage.ls(rows[1]["state_uri"])}
    assert {"optimizer.bin", "model.safetensors", "trainer_state.json", "random_states_0.pkl"} <= state_files

    prompt = "#lang racket\n(define (add"
    for row in rows:
        local = tmp_path / row["tag"]
        storage.download_dir(row["uri"], local)
        assert not (local / "optimizer.bin").exists()
        resolved = yaml.safe_load((local / "_multiplt_train.yaml").read_text())
        assert resolved["config"]["lr"] == 1e-3 and resolved["config"]["recipe"] == "starcoderbase-1b"
        assert resolved["epoch"] == row["epoch"] and resolved["step"] == row["step"]
        config = json.loads((local / "config.json").read_text())
        assert config["use_cache"] is True and config["dtype"] == "bfloat16"
        model = AutoModelForCausalLM.from_pretrained(local)
        assert next(model.parameters()).dtype == torch.bfloat16
        tok = AutoTokenizer.from_pretrained(local)
        ids = tok(prompt, return_tensors="pt")
        gen = model.generate(**ids, max_new_tokens=8, do_sample=False)
        assert gen.shape[1] == ids["input_ids"].shape[1] + 8

    # `multiplt generate` loads a checkpoint by its URI and by `--model OUT --revision TAG`.
    bench = str(tmp_path / "bench.jsonl")
    storage.write_jsonl(bench, [{"name": "HumanEval_0_add", "language": "rkt", "prompt": prompt,
                                 "tests": "(module+ test)\n", "stop_tokens": ["\n(define"],
                                 "doctests": "keep", "original": "", "prompt_terminology": "verbatim"}])
    for model_args, folder in [(["--model", rows[0]["uri"]], "by-uri"),
                               (["--model", out, "--revision", "rkt-multiplt-epoch2"], "by-tag")]:
        gen_out = str(tmp_path / folder)
        assert cli.main(["generate", "--benchmark", bench, *model_args, "--n", "1",
                         "--max-new-tokens", "8", "--batch-size", "1", "--out", gen_out]) == 0
        problem = storage.read_json(storage.join(gen_out, "HumanEval_0_add.json.gz"))
        assert len(problem["completions"]) == 1


def test_rerun_of_a_finished_output_does_nothing(tiny_model, tmp_path):
    data = tmp_path / "racket.jsonl"
    storage.write_jsonl(str(data), [{"content": d} for d in racket_documents(120)])
    out = str(tmp_path / "run")
    args = ["train", "--dataset", str(data), "--base", tiny_model, "--lang", "rkt", "--experiment",
            "x", "--out", out, "--epochs", "1", *TINY_RECIPE]
    assert cli.main(args) == 0
    before = storage.read_bytes(storage.join(out, "manifest.jsonl"))
    assert cli.main(args) == 0
    assert storage.read_bytes(storage.join(out, "manifest.jsonl")) == before
    # The same output with other settings is refused rather than silently mixed.
    assert cli.main(args[:-len(TINY_RECIPE)] + TINY_RECIPE[:-2] + ["--lr", "5e-4"]) == 2


def test_recipe_default_speed_settings_on_cpu_and_resume_of_a_fixed_micro_batch(tiny_model, tmp_path):
    """Without --micro-batch-size/--compile the run picks them (speed.plan: one sequence per forward
    and no compile on a CPU) and records them; an output started with a fixed micro-batch reruns
    without the flag (it keeps its micro-batch) instead of being refused."""
    data = tmp_path / "racket.jsonl"
    storage.write_jsonl(str(data), [{"content": d} for d in racket_documents(120)])
    i = TINY_RECIPE.index("--micro-batch-size")
    no_micro = TINY_RECIPE[:i] + TINY_RECIPE[i + 2:]
    base = ["train", "--dataset", str(data), "--base", tiny_model, "--lang", "rkt", "--experiment", "x",
            "--epochs", "1"]
    out = str(tmp_path / "auto")
    assert cli.main(base + ["--out", out, *no_micro]) == 0
    resolved = yaml.safe_load(storage.read_bytes(storage.join(out, "_multiplt_train.yaml")))
    assert resolved["config"]["micro_batch_size"] == 0 and resolved["config"]["compile"] is None
    assert resolved["speed"] == {"micro_batch": 1, "grad_accum": 4, "compile": False}

    fixed = str(tmp_path / "fixed")
    assert cli.main(base + ["--out", fixed, *TINY_RECIPE]) == 0
    before = storage.read_bytes(storage.join(fixed, "manifest.jsonl"))
    assert cli.main(base + ["--out", fixed, *no_micro]) == 0  # same run: nothing to do
    assert storage.read_bytes(storage.join(fixed, "manifest.jsonl")) == before


def test_bad_inputs_fail_early_with_one_clear_error(tiny_model, tmp_path, capsys):
    import os
    import subprocess
    import sys

    out = tmp_path / "run"
    base = ["train", "--base", tiny_model, "--lang", "rkt", "--experiment", "x", "--out", str(out),
            *TINY_RECIPE]
    # A Hub dataset while offline (a subprocess, so the Hub libraries read HF_HUB_OFFLINE at import).
    hub = subprocess.run([sys.executable, "-m", "multiplt", *base, "--dataset", "nuprl/MultiPL-T"],
                         env=dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1"),
                         capture_output=True, text=True)
    assert hub.returncode == 2
    assert "cannot load Hub dataset 'nuprl/MultiPL-T' split 'racket'" in hub.stderr
    bad = tmp_path / "racket.jsonl"
    storage.write_jsonl(str(bad), [{"text": "x"}])
    assert cli.main(base + ["--dataset", str(bad)]) == 2
    assert "has no 'content' field" in capsys.readouterr().err
    assert not out.exists()  # nothing half-written
    bad.write_text("")  # an empty dataset file: the error names it
    assert cli.main(base + ["--dataset", str(bad)]) == 2
    assert f"error: dataset {bad} has no usable documents: it has no rows" in capsys.readouterr().err
    assert not out.exists()
    storage.write_jsonl(str(bad), [{"content": "(define x 1)"}])
    no_model = tmp_path / "no_model"
    no_model.mkdir()
    # A missing path and a folder without config.json: the errors `generate --model` gives.
    for missing, said in ((str(tmp_path / "nowhere"), f"base model {str(tmp_path / 'nowhere')!r} is not a model folder"),
                          (str(no_model), f"{no_model} holds no model: no config.json in {no_model}")):
        argv = [a if a != tiny_model else missing for a in base]
        assert cli.main(argv + ["--dataset", str(bad)]) == 2
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err and err.count("error:") == 1
        assert not out.exists()
