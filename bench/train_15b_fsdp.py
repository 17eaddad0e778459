"""`multiplt train` with FSDP in the StarCoderBase-15B shape (issue 21): random weights, the 15B
recipe (multiplt/recipes/starcoderbase-15b.yaml: lr 2e-5, 32 sequences of 2048 tokens per step,
micro-batch 1, gradient checkpointing, FSDP), driven through the real CLI
(`accelerate launch --num_processes N -m multiplt train ... --distributed fsdp`).

Two runs of 2 epochs x (steps / 2) optimizer steps on the same data and seed:
  uninterrupted  one command, start to end; its steps give tokens/s and MFU (6N, all parameters)
  resume         the same command in another folder, SIGKILLed once its epoch-1 checkpoint is
                 committed, then started again: it reloads that checkpoint and finishes
The final bf16 checkpoints of the two must agree within bf16 rounding (every weight at most one
bf16 unit in the last place apart); where the fp32 training states are safetensors (one process or
DDP/CPU) their exact difference is recorded too. Peak memory per GPU is polled from nvidia-smi
(what the processes hold, CUDA context and cached blocks included); on CPUs the peak resident
memory of each training process. Results go to --out (bench/results/train_15b_fsdp.json).

The shape is a parameter: the same script runs a tiny model on CPUs (tests/integration/
test_train_15b_fsdp_bench.py). `--plan` builds the shape on the meta device (no memory), counts its
parameters and writes per-GPU memory and disk/RAM estimates for N GPUs (train_15b_fsdp_plan.json).

    python3 bench/train_15b_fsdp.py --plan
    python3 bench/train_15b_fsdp.py --tokenizer data/test-cache/tiny-model-XXXX --nproc 8 --lean \\
        --work data/work15b --state-dir /mnt/ram/state
    python3 bench/train_15b_fsdp.py --cpu --nproc 2 --layers 2 --width 64 --heads 4 --vocab 1024 \\
        --positions 256 --seq-len 64 --batch-size 4 --steps 6 --tokenizer ... --out /tmp/r.json

The tokenizer only supplies ids (the tiny test model's; the 49152-row embedding is trained all the
same). Needs torch, transformers, accelerate, psutil and this package.
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
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "bench"))

import torch  # noqa: E402

from fsdp_plan import GIB, count_parameters, plan  # noqa: E402

LANG = "py"
RECIPE = "starcoderbase-15b"
H200_BF16_FLOPS = 989.4e12  # dense bf16 peak of one H100/H200 SXM (spec sheet)


def model_config(args):
    from transformers import GPTBigCodeConfig

    return GPTBigCodeConfig(vocab_size=args.vocab, n_positions=args.positions, n_embd=args.width,
                            n_layer=args.layers, n_head=args.heads, n_inner=4 * args.width,
                            multi_query=True, activation_function="gelu_pytorch_tanh",
                            bos_token_id=0, eos_token_id=0)


def make_model(args, tok, out: str) -> dict:
    """Random weights in the shape, saved as bf16 safetensors with the tokenizer beside them."""
    from transformers import AutoModelForCausalLM

    config = model_config(args)
    config.bos_token_id = config.eos_token_id = tok.eos_token_id
    torch.manual_seed(0)
    t0 = time.time()
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(out, max_shard_size="5GB")
    tok.save_pretrained(out)
    return {"n_layer": args.layers, "n_embd": args.width, "n_head": args.heads, "multi_query": True,
            "vocab_size": args.vocab, "n_positions": args.positions, "num_parameters": model.num_parameters(),
            "seconds": round(time.time() - t0, 1)}


def make_data(path: str, tok, args) -> dict:
    """Python standard-library sources (sorted, cut at line ends into pieces of at most one
    sequence's worth of characters) as a `content` JSONL of the fewest pieces for which the CLI's
    packing (multiplt.training.packing's split and pack, as data.prepare calls them, same seed and
    eval fraction) gives exactly steps/2 optimizer steps per epoch."""
    from multiplt.training import config as tconfig
    from multiplt.training.packing import pack, split_documents

    eval_fraction, seed = tconfig.load_recipe(RECIPE)["eval_fraction"], tconfig.TrainConfig.seed
    per_epoch = args.steps // 2
    want_tokens = per_epoch * args.batch_size * args.seq_len
    piece_chars = max(200, 2 * args.seq_len)
    pieces, chars = [], 0
    for name in sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "**", "*.py"), recursive=True)):
        try:
            lines = open(name, encoding="utf-8").read().splitlines(keepends=True)
        except (UnicodeDecodeError, OSError):
            continue
        current = ""
        for line in lines:
            if current and len(current) + len(line) > piece_chars:
                pieces.append(current)
                current = ""
            current += line
        if current.strip():
            pieces.append(current)
        chars = sum(len(p) for p in pieces)
        if chars > 8 * want_tokens:  # at least 8 characters a token is more than any tokenizer packs
            break
    pieces = [p for p in pieces if p.strip()]
    ids = tok(pieces, add_special_tokens=False)["input_ids"]

    def steps(n):
        train_idx, _ = split_documents(n, eval_fraction, seed)
        train, _ = pack((ids[i] for i in train_idx), tok.eos_token_id, args.seq_len)
        return train.shape[0] // args.batch_size

    lo, hi = 1, len(pieces)
    if steps(hi) < per_epoch:
        raise SystemExit(f"the standard library holds too little text for {per_epoch} steps per epoch")
    while lo < hi:  # fewest pieces that give per_epoch steps
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if steps(mid) < per_epoch else (lo, mid)
    if steps(lo) != per_epoch:
        raise SystemExit(f"cannot cut the data to exactly {per_epoch} steps per epoch")
    with open(path, "w") as f:
        for text in pieces[:lo]:
            f.write(json.dumps({"content": text}) + "\n")
    return {"documents": lo, "tokens": sum(len(x) + 1 for x in ids[:lo]), "steps_per_epoch": per_epoch}


def launch_command(args) -> tuple[list[str], dict]:
    if args.cpu:  # accelerate launch --cpu starts one process; torchrun starts N (gloo)
        exe = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or "torchrun"
        return [exe, "--nproc_per_node", str(args.nproc), "--master_port", str(29500 + os.getpid() % 1000)], \
            {"ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    exe = shutil.which("accelerate", path=os.path.dirname(sys.executable)) or shutil.which("accelerate")
    cmd = [exe, "launch"] if exe else [sys.executable, "-m", "accelerate.commands.launch"]
    return cmd + ["--num_processes", str(args.nproc)] + (["--multi_gpu"] if args.nproc > 1 else []), {}


def train_command(args, data: str, base: str, out: str) -> list[str]:
    launch, _ = launch_command(args)
    return launch + ["-m", "multiplt", "train", "--dataset", data, "--base", base, "--lang", LANG,
                     "--experiment", "fsdp15b", "--recipe", RECIPE, "--distributed", "fsdp",
                     "--epochs", "2", "--seq-len", str(args.seq_len), "--batch-size", str(args.batch_size),
                     "--log-every", "1", "--out", out]


class MemoryPoller(threading.Thread):
    """Peak memory per GPU (nvidia-smi, MiB) or per training process (resident set, CPU)."""

    def __init__(self, root_pid: int, cpu: bool):
        super().__init__(daemon=True)
        self.root, self.cpu, self.peak, self.stop = root_pid, cpu, {}, threading.Event()

    def sample(self) -> dict:
        if not self.cpu:
            out = subprocess.run(["nvidia-smi", "--query-gpu=index,memory.used", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True).stdout
            return {int(i): float(m) / 1024 for i, m in (line.split(",") for line in out.strip().splitlines())}
        import psutil

        try:
            procs = psutil.Process(self.root).children(recursive=True)
        except psutil.NoSuchProcess:
            return {}
        found, parents = {}, {}
        for p in procs:
            try:
                if "multiplt" in " ".join(p.cmdline()):
                    found[p.pid] = p.memory_info().rss / GIB
                    parents[p.pid] = p.ppid()
            except psutil.Error:
                pass
        # the training processes only: a process a training process forked (a worker, which keeps
        # its parent's command line) is part of that process, not another one
        return {pid: rss for pid, rss in found.items() if parents[pid] not in found}

    def run(self):
        while not self.stop.is_set():
            for k, v in self.sample().items():
                self.peak[k] = max(self.peak.get(k, 0.0), v)
            self.stop.wait(0.5)

    def result(self) -> list[float]:
        return [round(v, 2) for _, v in sorted(self.peak.items())]


def run(cmd: list[str], log: str, env: dict, cpu: bool, timeout: float, kill_after_rows: int | None = None,
        out: str | None = None) -> dict:
    import psutil

    t0 = time.time()
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True)
        poller = MemoryPoller(proc.pid, cpu)
        poller.start()
        killed = timed_out = False
        while proc.poll() is None:
            manifest = os.path.join(out, "manifest.jsonl")
            timed_out = time.time() - t0 > timeout
            if timed_out or kill_after_rows is not None and os.path.exists(manifest) and \
                    len(open(manifest).read().splitlines()) >= kill_after_rows:
                launched = psutil.Process(proc.pid)  # SIGKILL launcher and workers, no cleanup
                for p in launched.children(recursive=True) + [launched]:
                    try:
                        p.kill()
                    except psutil.NoSuchProcess:
                        pass
                killed = not timed_out
                break
            time.sleep(0.05)
        rc = proc.wait()
        poller.stop.set()
        poller.join()
    key = "peak_memory_per_gpu_gib" if not cpu else "peak_rss_per_process_gib"
    return {"returncode": rc, "seconds": round(time.time() - t0, 1), "killed": killed, "timed_out": timed_out,
            key: poller.result()}


def throughput(out: str, args, n_params: int, skip: int) -> dict:
    """tokens/s over every step but the first `skip` of each epoch, from the CLI's step logs
    (each step's time is the interval between queueing it and the one before)."""
    tokens = args.batch_size * args.seq_len
    times = []
    for path in sorted(glob.glob(os.path.join(out, "logs", "epoch*.jsonl"))):
        rows = [json.loads(line) for line in open(path)]
        rows = [r for r in rows if "tokens_per_s" in r]
        times += [tokens / r["tokens_per_s"] for r in rows[skip:]]
    if not times:
        return {}
    tps = tokens * len(times) / sum(times)
    res = {"steps_measured": len(times), "tokens_per_step": tokens, "tokens_per_s": round(tps, 1),
           "tokens_per_s_per_gpu": round(tps / args.nproc, 1), "seconds_per_step": round(sum(times) / len(times), 3)}
    if not args.cpu:
        res["mfu_6n"] = round(6 * n_params * tps / (args.nproc * H200_BF16_FLOPS), 4)
        res["mfu_peak_flops_per_gpu"] = H200_BF16_FLOPS
    return res


def compare(a: str, b: str, tag: str) -> dict:
    """Final weights of two runs: bf16 checkpoints within one bf16 ulp; fp32 states exactly."""
    from safetensors.torch import load_file

    def tensors(folder):
        out = {}
        for path in sorted(glob.glob(os.path.join(folder, "*.safetensors"))):
            out.update(load_file(path))
        return out

    res = {}
    wa, wb = tensors(os.path.join(a, "checkpoints", tag)), tensors(os.path.join(b, "checkpoints", tag))
    if not wa or set(wa) != set(wb):
        return {"bf16_equal_within_rounding": False, "error": "checkpoints missing or with different keys"}
    worst_ulps, worst_abs, differing, total = 0.0, 0.0, 0, 0
    for k in wa:
        x, y = wa[k].float(), wb[k].float()
        # one bf16 ulp at the larger magnitude: 2^(floor(log2|v|) - 7); subnormal floor 2^-133
        ulp = torch.exp2(torch.floor(torch.log2(torch.maximum(x.abs(), y.abs()).clamp_min(2.0 ** -126))) - 7)
        d = (x - y).abs()
        worst_ulps = max(worst_ulps, (d / ulp).max().item())
        worst_abs = max(worst_abs, d.max().item())
        differing += int((d > 0).sum())
        total += d.numel()
    res.update({"bf16_max_abs_diff": worst_abs, "bf16_max_ulps": worst_ulps, "bf16_elements_differing": differing,
                "bf16_elements": total, "bf16_equal_within_rounding": worst_ulps <= 1.0})
    sa, sb = tensors(os.path.join(a, "state", tag)), tensors(os.path.join(b, "state", tag))
    if sa and set(sa) == set(sb):
        res["fp32_state_max_abs_diff"] = max((sa[k].float() - sb[k].float()).abs().max().item() for k in sa)
    return res


def read_log(log: str) -> dict:
    text = open(log).read()
    kinds = sorted(set(re.findall(r"process \d+ of \d+ on \S+ \((\w+)\)", text)))
    procs = sorted(set(int(m) for m in re.findall(r"process (\d+) of \d+ on", text)))
    return {"accelerate_distributed_type": kinds, "processes_logged": procs,
            "precision": (re.findall(r"precision (\S+)", text) or [None])[0],
            "resumed": bool(re.search(r"resuming from checkpoint \S+-epoch1 \(epoch 1\) at step \d+", text))}


def bench(args) -> dict:
    import accelerate
    import transformers
    from transformers import AutoTokenizer

    n_params = count_parameters(model_config(args))
    layout = plan(model_config(args), n_params, [args.nproc], args.seq_len, args.batch_size)
    need = layout["per_gpu_count"][str(args.nproc)]["host"]
    lean = "_lean" if args.lean else ""
    checks = [(args.work, need[f"work_disk_gb{lean}"])] if not args.state_dir else \
        [(args.work, need[f"work_disk_gb{lean}_checkpoints_only" if args.lean else "work_disk_gb_checkpoints_only"]),
         (args.state_dir, need[f"state_dir_gb{lean}"])]
    for where, gb in checks:
        probe = where
        while not os.path.exists(probe):
            probe = os.path.dirname(os.path.abspath(probe))
        free = shutil.disk_usage(probe).free / 1e9
        if free < gb:
            raise SystemExit(f"{where} has {free:.0f} GB free; this bench needs about {gb:.0f} GB there "
                             f"(see --plan; --lean and --state-dir on another filesystem, e.g. a tmpfs, need less)")
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    state_root = args.state_dir or args.work
    os.makedirs(state_root, exist_ok=True)
    tmp = os.path.join(state_root, "tmp")  # the CLI's working folder: beside the states, so they are renamed
    os.makedirs(tmp, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    data, base = os.path.join(args.work, "python.jsonl"), os.path.join(args.work, "model")
    record = {"command": " ".join([os.path.basename(sys.executable)] + sys.argv),
              "device": f"{args.nproc} x {torch.cuda.get_device_name() if torch.cuda.is_available() and not args.cpu else 'cpu'}",
              "versions": {"python": platform.python_version(), "torch": torch.__version__,
                           "transformers": transformers.__version__, "accelerate": accelerate.__version__},
              "recipe": RECIPE, "steps": args.steps, "seq_len": args.seq_len, "batch_size": args.batch_size,
              "num_parameters": n_params, "data": make_data(data, tok, args), "model": make_model(args, tok, base)}
    _, extra_env = launch_command(args)
    env = dict(os.environ, PYTHONPATH=REPO, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", TMPDIR=tmp,
               **extra_env)
    tag = f"{LANG}-fsdp15b-epoch2"
    outs = {}
    for name in ("uninterrupted", "resume"):
        out = os.path.join(args.work, f"out-{name}")
        if args.state_dir:  # training states (12 bytes a parameter) on the other filesystem
            os.makedirs(out)
            os.makedirs(os.path.join(state_root, name), exist_ok=True)
            os.symlink(os.path.join(state_root, name), os.path.join(out, "state"))
        log = os.path.join(args.work, f"{name}.log")
        cmd = train_command(args, data, base, out)
        if name == "uninterrupted":
            res = {"run": run(cmd, log, env, args.cpu, args.timeout, out=out)}
            res.update(throughput(out, args, n_params, skip=args.skip_steps))
        else:
            res = {"first": run(cmd, log, env, args.cpu, args.timeout, kill_after_rows=1, out=out),
                   "second": run(cmd, log, env, args.cpu, args.timeout, out=out)}
            res["throughput_after_resume"] = throughput(out, args, n_params, skip=args.skip_steps)
        res.update(read_log(log))
        rows = [json.loads(line) for line in open(os.path.join(out, "manifest.jsonl"))] \
            if os.path.exists(os.path.join(out, "manifest.jsonl")) else []
        res["manifest"] = [{k: r[k] for k in ("tag", "step", "eval_loss", "run_start_step")} for r in rows]
        ok = [r["step"] for r in rows] == [args.steps // 2, args.steps]
        if name == "resume":
            ok = ok and res["first"]["killed"] and res["resumed"] and rows[-1]["run_start_step"] == args.steps // 2
        res["ok"] = bool(ok and (res.get("run") or res["second"])["returncode"] == 0)
        if not res["ok"]:
            res["log_tail"] = open(log).read()[-4000:]
        record[name] = res
        outs[name] = out
        print(name, json.dumps(res)[:2000], flush=True)
        shutil.copy(log, os.path.join(os.path.dirname(os.path.abspath(args.out)), f"train_15b_fsdp-{name}.log"))
        if name == "uninterrupted" and args.lean:  # keep only the final bf16 checkpoint to compare
            shutil.rmtree(os.path.join(state_root, name) if args.state_dir else os.path.join(out, "state"),
                          ignore_errors=True)
            shutil.rmtree(os.path.join(out, "checkpoints", f"{LANG}-fsdp15b-epoch1"), ignore_errors=True)
    record["resume_vs_uninterrupted"] = compare(outs["uninterrupted"], outs["resume"], tag)
    u = record["uninterrupted"]
    record["summary"] = {
        "num_parameters": n_params, "gpus": args.nproc, "steps": args.steps,
        "tokens_per_s": u.get("tokens_per_s"), "mfu_6n": u.get("mfu_6n"),
        "peak_memory_per_gpu_gib": u["run"].get("peak_memory_per_gpu_gib"),
        "fsdp": u["accelerate_distributed_type"] == ["FSDP"],
        "resume_exact": record["resume_vs_uninterrupted"]["bf16_equal_within_rounding"],
        # on GPUs the runs must have been sharded by FSDP (accelerate runs CPU processes as MULTI_CPU)
        "ok": u["ok"] and record["resume"]["ok"] and record["resume_vs_uninterrupted"]["bf16_equal_within_rounding"]
        and (args.cpu or u["accelerate_distributed_type"] == ["FSDP"])}
    return record


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shape = ap.add_argument_group("model shape (default: StarCoderBase-15B)")
    shape.add_argument("--layers", type=int, default=40)
    shape.add_argument("--width", type=int, default=6144)
    shape.add_argument("--heads", type=int, default=48)
    shape.add_argument("--vocab", type=int, default=49152)
    shape.add_argument("--positions", type=int, default=8192)
    ap.add_argument("--seq-len", type=int, default=2048, help="the 15B recipe's")
    ap.add_argument("--batch-size", type=int, default=32, help="effective sequences per step (the 15B recipe's)")
    ap.add_argument("--steps", type=int, default=30, help="optimizer steps per run (2 epochs of steps/2)")
    ap.add_argument("--skip-steps", type=int, default=2, help="first steps of each epoch left out of tokens/s")
    ap.add_argument("--plan", action="store_true", help="only the meta-device sharding plan (no weights, no run)")
    ap.add_argument("--plan-gpus", default="4,8")
    ap.add_argument("--tokenizer", help="a local model folder whose tokenizer to use")
    ap.add_argument("--nproc", type=int, default=torch.cuda.device_count())
    ap.add_argument("--cpu", action="store_true", help="CPU processes over gloo (torchrun), for a tiny shape")
    ap.add_argument("--work", default="/tmp/multiplt-15b-fsdp")
    ap.add_argument("--state-dir", help="folder (another filesystem, e.g. a tmpfs) for the runs' training states")
    ap.add_argument("--lean", action="store_true", help="delete the uninterrupted run's state and epoch-1 "
                                                         "checkpoint before the resume run (disk)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds before a training command is killed")
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results", "train_15b_fsdp.json"))
    args = ap.parse_args()
    if args.steps < 2 or args.steps % 2:
        ap.error("--steps must be even (2 epochs)")
    if args.plan:
        config = model_config(args)
        n = count_parameters(config)
        record = plan(config, n, [int(g) for g in args.plan_gpus.split(",")], args.seq_len, args.batch_size)
        record["command"] = " ".join([os.path.basename(sys.executable)] + sys.argv)
        out = args.out if args.out.endswith("_plan.json") else args.out.replace(".json", "_plan.json")
    else:
        if not args.tokenizer:
            ap.error("--tokenizer is required for a run")
        if args.nproc < 1:
            ap.error("no GPUs found: give --cpu --nproc N for CPU processes")
        record, out = bench(args), args.out
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out + ".tmp", "w") as f:
        json.dump(record, f, indent=1, default=str)
    os.replace(out + ".tmp", out)
    print(json.dumps(record.get("summary", record), indent=1, default=str))
    return 0 if args.plan or record["summary"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
