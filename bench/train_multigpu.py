"""Multi-GPU `multiplt train` through accelerate (issue 6, point 5): the real CLI, launched as
docs/training.md says (`accelerate launch --num_processes N -m multiplt train ...`), once with DDP
and once with FSDP (`--distributed fsdp`), 2 epochs each, then an exact-resume check under DDP (a
run killed after its epoch-1 checkpoint and started again with the same command).

The model is a mid-size random-init GPTBigCode (8 layers, d=512, multi-query, the StarCoder
architecture) built here with the tokenizer of the tiny test model; the data is a JSONL of Python
standard-library sources of the machine running this. Checked per mode: every process ran (log
lines and per-process RNG state files), one manifest with one row per epoch and one set of tagged
checkpoints, written once; each checkpoint loads with from_pretrained (bf16, full shapes, not
shards) and generates; train and eval loss go down. Results go to --out as JSON.

    python3 bench/train_multigpu.py --tokenizer data/test-cache/tiny-model-XXXX --out $OUT/train_multigpu.json

Needs torch, transformers, accelerate and this package (JSONL data: no polars/pyarrow/boto3).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import torch  # noqa: E402

LANG = "py"


def make_data(path: str, max_docs: int = 400) -> int:
    """Python standard-library files (sorted, so the same on every run) as a `content` JSONL."""
    files = sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "**", "*.py"), recursive=True))
    n = 0
    with open(path, "w") as f:
        for name in files:
            try:
                text = open(name, encoding="utf-8").read()
            except (UnicodeDecodeError, OSError):
                continue
            if 200 < len(text) < 10_000:
                f.write(json.dumps({"content": text}) + "\n")
                n += 1
            if n >= max_docs:
                break
    return n


def make_model(tokenizer_path: str, out: str) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer, GPTBigCodeConfig

    tok = AutoTokenizer.from_pretrained(tokenizer_path)
    width, layers = (128, 2) if CPU else (512, 8)
    config = GPTBigCodeConfig(vocab_size=len(tok), n_positions=1024, n_embd=width, n_layer=layers, n_head=8,
                              multi_query=True, activation_function="gelu_pytorch_tanh",
                              bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return {"n_layer": layers, "n_embd": width, "n_head": 8, "vocab_size": len(tok), "num_parameters": model.num_parameters()}


def launcher() -> list[str]:
    exe = shutil.which("accelerate", path=os.path.dirname(sys.executable)) or shutil.which("accelerate")
    return [exe, "launch"] if exe else [sys.executable, "-m", "accelerate.commands.launch"]


CPU = False  # --cpu: a check of this script on a machine without GPUs (smaller model)


def train_command(nproc: int, data: str, base: str, out: str, experiment: str, extra: list[str]) -> list[str]:
    return launcher() + ["--num_processes", str(nproc), *(["--cpu"] if CPU else []), "-m", "multiplt", "train",
                         "--dataset", data, "--base", base, "--lang", LANG, "--experiment", experiment,
                         "--recipe", "starcoderbase-1b", "--epochs", "2", "--seq-len", "256",
                         "--batch-size", "16", "--micro-batch-size", "4", "--lr", "1e-3", "--warmup-steps", "10",
                         "--eval-fraction", "0.05", "--log-every", "20", "--out", out, *extra]


def run(cmd: list[str], log: str, env: dict, kill_after_rows: int | None = None, out: str | None = None) -> dict:
    t0 = time.time()
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True)
        killed = False
        if kill_after_rows is not None:
            manifest = os.path.join(out, "manifest.jsonl")
            while proc.poll() is None:
                if os.path.exists(manifest) and len(open(manifest).read().splitlines()) >= kill_after_rows:
                    # SIGKILL the launcher and its workers (they run in sessions of their own, so
                    # killing the launcher's process group alone leaves them training)
                    import psutil

                    launched = psutil.Process(proc.pid)
                    for p in launched.children(recursive=True) + [launched]:
                        try:
                            p.kill()
                        except psutil.NoSuchProcess:
                            pass
                    killed = True
                    break
                time.sleep(0.05)
        rc = proc.wait()
    return {"command": " ".join(cmd[cmd.index("-m") if "-m" in cmd else 0:]), "returncode": rc,
            "seconds": round(time.time() - t0, 1), "killed": killed}


def check_output(out: str, experiment: str, nproc: int, log_text: str, base: str) -> dict:
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from multiplt.storage import manifest

    rows = manifest.read(out)
    res = {"manifest_rows": [{k: r[k] for k in ("tag", "epoch", "step", "eval_loss", "run_start_step")} for r in rows]}
    res["manifest_files"] = len(glob.glob(os.path.join(out, "**", "manifest.jsonl"), recursive=True))
    res["checkpoints"] = sorted(os.listdir(os.path.join(out, "checkpoints")))
    res["states"] = sorted(os.listdir(os.path.join(out, "state")))
    want = [f"{LANG}-{experiment}-epoch{e}" for e in (1, 2)]
    res["tags_ok"] = res["checkpoints"] == want and [r["tag"] for r in rows] == want and res["states"] == want[-1:]
    state_files = os.listdir(os.path.join(out, "state", want[-1])) if res["states"] else []
    res["rng_state_files"] = sorted(f for f in state_files if f.startswith("random_states"))
    res["processes_logged"] = sorted(set(int(m) for m in re.findall(r"process (\d+) of %d on (?:cuda|cpu)" % nproc,
                                                                    log_text)))
    res["all_processes_ran"] = res["processes_logged"] == list(range(nproc)) and \
        len(res["rng_state_files"]) == nproc
    losses = []
    for e in (1, 2):
        path = os.path.join(out, "logs", f"epoch{e}.jsonl")
        losses += [json.loads(line) for line in open(path)] if os.path.exists(path) else []
    train = [r["loss"] for r in losses if "loss" in r]
    res["train_loss_first_last"] = [round(train[0], 4), round(train[-1], 4)] if train else None
    evals = [r["eval_loss"] for r in rows]
    res["loss_goes_down"] = bool(train and train[-1] < train[0] and evals == sorted(evals, reverse=True)
                                 and evals[-1] < evals[0])
    base_shapes = {k: tuple(v.shape) for k, v in load_file(os.path.join(base, "model.safetensors")).items()}
    res["checkpoint_load"] = {}
    tok = AutoTokenizer.from_pretrained(os.path.join(out, "checkpoints", want[0]))
    for tag in res["checkpoints"]:
        path = os.path.join(out, "checkpoints", tag)
        weights = load_file(os.path.join(path, "model.safetensors"))
        model = AutoModelForCausalLM.from_pretrained(path)
        ids = tok("def main(", return_tensors="pt").input_ids
        gen = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=tok.eos_token_id)
        res["checkpoint_load"][tag] = {
            "from_pretrained": True, "dtype": str(model.dtype),
            "weights_bf16": all(v.dtype == torch.bfloat16 for v in weights.values()),
            "same_keys_as_base": set(weights) == set(base_shapes),
            "full_shapes": all(tuple(v.shape) == base_shapes.get(k) for k, v in weights.items()),
            "generated_tokens": int(gen.shape[1] - ids.shape[1])}
    return res


def compare_final(a: str, b: str, tag: str) -> dict:
    """Max abs difference of the final fp32 training-state weights and bf16 checkpoints of two runs."""
    from safetensors.torch import load_file

    out = {}
    for name, sub in (("state_fp32", os.path.join("state", tag)), ("checkpoint_bf16", os.path.join("checkpoints", tag))):
        fa = sorted(glob.glob(os.path.join(a, sub, "**", "*.safetensors"), recursive=True))
        fb = sorted(glob.glob(os.path.join(b, sub, "**", "*.safetensors"), recursive=True))
        if not fa or len(fa) != len(fb):
            out[name] = None
            continue
        diff = 0.0
        for x, y in zip(fa, fb):
            wa, wb = load_file(x), load_file(y)
            diff = max([diff] + [(wa[k].float() - wb[k].float()).abs().max().item() for k in wa])
        out[name] = diff
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", required=True, help="a local model folder whose tokenizer to use")
    ap.add_argument("--out", required=True, help="result JSON")
    ap.add_argument("--work", default="/tmp/multiplt-multigpu")
    ap.add_argument("--nproc", type=int, default=torch.cuda.device_count())
    ap.add_argument("--modes", default="ddp,fsdp,resume")
    ap.add_argument("--cpu", action="store_true", help="check this script on CPUs (smaller model; accelerate starts one process there)")
    args = ap.parse_args()
    global CPU
    CPU = args.cpu
    import accelerate
    import transformers

    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    data = os.path.join(args.work, "python.jsonl")
    base = os.path.join(args.work, "model")
    record = {"command": " ".join([os.path.basename(sys.executable)] + sys.argv),
              "device": f"{args.nproc} x {torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'}",
              "versions": {"python": platform.python_version(), "torch": torch.__version__,
                           "transformers": transformers.__version__, "accelerate": accelerate.__version__,
                           "nccl": ".".join(map(str, torch.cuda.nccl.version())) if torch.cuda.is_available() else None},
              "documents": make_data(data, 60 if CPU else 400), "model": make_model(args.tokenizer, base), "modes": {}}
    env = dict(os.environ, PYTHONPATH=REPO, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    for mode in args.modes.split(","):
        log = os.path.join(args.work, f"{mode}.log")
        if mode == "resume":  # killed after epoch 1, then the same command again; compared with ddp
            out = os.path.join(args.work, "out-resume")
            cmd = train_command(args.nproc, data, base, out, "ddp", [])
            first = run(cmd, log, env, kill_after_rows=1, out=out)
            second = run(cmd, log, env)
            text = open(log).read()
            res = {"first": first, "second": second,
                   "resumed_log": bool(re.search(r"resuming from checkpoint \S+-epoch1 \(epoch 1\) at step \d+", text))}
            if second["returncode"] == 0:
                res.update(check_output(out, "ddp", args.nproc, text, base))
                steps_per_epoch = res["manifest_rows"][0]["step"]
                res["resume_start_step_ok"] = res["manifest_rows"][-1]["run_start_step"] == steps_per_epoch
                res["max_abs_diff_vs_uninterrupted"] = compare_final(os.path.join(args.work, "out-ddp"), out,
                                                                     f"{LANG}-ddp-epoch2")
        else:
            out = os.path.join(args.work, f"out-{mode}")
            cmd = train_command(args.nproc, data, base, out, mode, ["--distributed", mode])
            res = run(cmd, log, env)
            text = open(log).read()
            if res["returncode"] == 0:
                res.update(check_output(out, mode, args.nproc, text, base))
            if res["returncode"] == 0 and not res["processes_logged"][1:] and args.nproc > 1 and not CPU:
                # the launcher started one process: say so, and try again with --multi_gpu
                res = {"plain_launch_started_one_process": res}
                shutil.rmtree(out, ignore_errors=True)
                cmd = cmd[:cmd.index("-m")] + ["--multi_gpu"] + cmd[cmd.index("-m"):]
                res.update(run(cmd, log, env))
                text = open(log).read()
                if res["returncode"] == 0:
                    res.update(check_output(out, mode, args.nproc, text, base))
            m = re.findall(r"precision (\S+)", text)
            res["precision"] = m[0] if m else None
            res["forward"] = (re.findall(r"training forward: (.*)", text) or [None])[0]
        if res.get("returncode", res.get("second", {}).get("returncode")) != 0:
            res["log_tail"] = open(log).read()[-3000:]
        record["modes"][mode] = res
        print(mode, json.dumps(res, default=str)[:1500], flush=True)
        shutil.copy(log, os.path.join(os.path.dirname(os.path.abspath(args.out)), f"multigpu-{mode}.log"))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(record, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
