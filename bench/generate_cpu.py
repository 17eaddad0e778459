"""CPU generation speed of the main job's tiny model: this tree's code against an earlier commit's.

The main job (scripts/main.sh) generates with the tiny local model (`multiplt model init-tiny`),
n=2 samples per problem, 128 new tokens, temperature 0.2, top_p 0.95, the default batch size,
stop strings on. This script runs exactly that through the transformers backend (the code path of
`multiplt generate`) on one language's benchmark, once with the code of `--before` (extracted
with `git archive` into a temporary folder) and once with this tree, alternately `--reps` times,
each in a fresh process with the same model, and reports for each: seconds spent generating
(model load excluded, reported separately), samples/s and tokens/s, where tokens are those the
completions hold (each completion re-tokenized: the same count for both when the completions are
equal, which is checked). The machine's 2 cores are shared, so the load average is recorded and
only the ratio within one run means anything; the process CPU time of the generation (one
thread in both) is recorded too, which the neighbours' load distorts less than wall time.

    python bench/generate_cpu.py --model models/tiny --benchmark data/benchmarks/humaneval-rkt.jsonl \
        --before 4d2908e --out bench/results/generate_cpu.json

`--testgen-functions URI` runs the main job's other generation instead: test generation's
prompts, built from a corpus output (`multiplt corpus build`'s folder, functions/) as `multiplt
testgen` builds them. Prompts that do not fit the model's context with the new tokens are left
out (counted): the baseline refuses them, where today's code cuts them from the left.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
import torch
import multiplt
from multiplt.generation.base import Request, Sampling
try:
    from multiplt.generation.backends import make_backend
except ImportError:  # commits before backends.py
    from multiplt.generation.base import make_backend
from multiplt import storage
args = json.loads(sys.argv[1])
t0 = time.perf_counter()
engine = make_backend("transformers", model=args["model"])
t1 = time.perf_counter()
rows = storage.read_jsonl(args["benchmark"])[: args["limit"]]
by_stop = {}
for row in rows:
    for i in range(args["n"]):
        by_stop.setdefault(tuple(row["stop_tokens"]), []).append(Request(row["name"], row["prompt"], i))
out = {}
t2, c2 = time.perf_counter(), time.process_time()
for stop, reqs in by_stop.items():
    sampling = Sampling(0.2, 0.95, args["max_new_tokens"], stop, 0)
    for group in engine.generate(reqs, sampling):
        for req, text in group:
            out[f"{req.problem}/{req.index}"] = text
t3, c3 = time.perf_counter(), time.process_time()
tok = engine.tokenizer
tokens = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in out.values())
print(json.dumps({"load_s": t1 - t0, "generate_s": t3 - t2, "generate_cpu_s": c3 - c2, "samples": len(out), "tokens": tokens,
                  "torch_threads": torch.get_num_threads(), "code": multiplt.__file__,
                  "completions": out}))
"""


def run_child(src: pathlib.Path, args) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src), HF_HUB_OFFLINE="1", TQDM_DISABLE="1")
    payload = json.dumps({"model": args.model, "benchmark": args.benchmark, "limit": args.limit,
                          "n": args.n, "max_new_tokens": args.max_new_tokens})
    # cwd=src: `python -c` puts the working folder first on sys.path, before PYTHONPATH
    proc = subprocess.run([sys.executable, "-c", CHILD, payload], env=env, capture_output=True,
                          text=True, check=False, cwd=src)
    if proc.returncode != 0:
        raise SystemExit(f"child with code from {src} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def git(*argv: str) -> str:
    return subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="the tiny model folder (multiplt model init-tiny)")
    workload = ap.add_mutually_exclusive_group(required=True)
    workload.add_argument("--benchmark", help="benchmark JSONL (multiplt benchmark build)")
    workload.add_argument("--testgen-functions",
                          help="a corpus output's functions folder: test generation's prompts")
    ap.add_argument("--before", required=True, help="git commit whose multiplt/ is the baseline")
    ap.add_argument("--limit", type=int, default=None, help="first N problems only")
    ap.add_argument("--n", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--out")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        left_out = None
        if args.testgen_functions:
            args.benchmark, left_out = testgen_prompts(args, pathlib.Path(tmp) / "testgen.jsonl")
        before_src = pathlib.Path(tmp) / "before"
        before_src.mkdir()
        archive = subprocess.run(["git", "archive", args.before, "multiplt"], cwd=REPO,
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(before_src)], input=archive, check=True)
        runs = {"before": [], "after": []}
        completions = {}
        for rep in range(args.reps):
            for name, src in (("before", before_src), ("after", REPO)):
                load = os.getloadavg()
                res = run_child(src, args)
                # which code the child imported, written without this machine's paths
                if not pathlib.Path(res["code"]).resolve().is_relative_to(src.resolve()):
                    raise SystemExit(f"the {name} child imported {res['code']}, not the code under {src}")
                res["code"] = (f"multiplt/ of {args.before} (git archive)" if name == "before"
                               else "multiplt/ of this tree")
                completions.setdefault(name, res.pop("completions"))
                res.update(loadavg_before=[round(x, 2) for x in load],
                           tokens_per_s=round(res["tokens"] / res["generate_s"], 1),
                           samples_per_s=round(res["samples"] / res["generate_s"], 2))
                res["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
                for key in ("generate_s", "generate_cpu_s", "load_s"):
                    res[key] = round(res[key], 2)
                runs[name].append(res)
                print(rep, name, {k: v for k, v in res.items() if k != "code"}, flush=True)
    best = {k: max(r["tokens_per_s"] for r in v) for k, v in runs.items()}
    median = {k: statistics.median(r["tokens_per_s"] for r in v) for k, v in runs.items()}
    same = sum(completions["before"][k] == completions["after"].get(k) for k in completions["before"])
    result = {
        "command": " ".join(["python"] + sys.argv),
        "commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--", "multiplt", "bench", ":!bench/results")),
        "before_commit": git("rev-parse", args.before),
        "device": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "machine": platform.platform(),
        "versions": {"python": platform.python_version(), **_versions()},
        "settings": {"n": args.n, "max_new_tokens": args.max_new_tokens, "temperature": 0.2,
                     "top_p": 0.95, "batch_size": "default", "limit": args.limit,
                     "benchmark": args.testgen_functions and "testgen prompts of " + args.testgen_functions
                     or args.benchmark, "model": args.model, "prompts_left_out": left_out},
        "runs": runs, "tokens_per_s_median": median, "tokens_per_s_best": best,
        "speedup_vs_before": round(median["after"] / median["before"], 2),
        "speedup_cpu_time_vs_before": round(
            statistics.median(r["generate_cpu_s"] for r in runs["before"])
            / statistics.median(r["generate_cpu_s"] for r in runs["after"]), 2),
        "completions_equal": f"{same}/{len(completions['before'])}",
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        pathlib.Path(args.out).write_text(text + "\n")


def testgen_prompts(args, path: pathlib.Path) -> tuple[str, int]:
    """Write test generation's prompts of the corpus functions to `path` (benchmark format);
    returns the path and how many prompts were left out for not fitting the context."""
    from transformers import AutoConfig, AutoTokenizer

    from multiplt import storage
    from multiplt.testgen import inputs, prompt

    tok = AutoTokenizer.from_pretrained(args.model)
    config = AutoConfig.from_pretrained(args.model)
    context = getattr(config, "n_positions", None) or config.max_position_embeddings
    rows = [prompt.generation_row(r) for r in inputs.read_functions(args.testgen_functions).iter_rows(named=True)]
    fit = [r for r in rows if len(tok(r["prompt"])["input_ids"]) + args.max_new_tokens <= context]
    storage.write_jsonl(str(path), fit)
    return str(path), len(rows) - len(fit)


def _versions() -> dict:
    import tokenizers
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__}


if __name__ == "__main__":
    main()
