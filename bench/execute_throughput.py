"""Programs executed per second, per installed language: `multiplt execute` (sandboxed, with
pre-loaded runtimes where a language has one) against MultiPL-E's own evaluator at the same
worker count, on the same programs, in the same process tree.

The fixed set: the hand-written reference solutions (tests/fixtures/solutions: a correct and a
wrong completion per problem) on the HumanEval benchmark our builder makes, each made unique by
a trailing comment and repeated until there are at least --min-programs programs per language.
Both sides run exactly the same programs; their verdicts (statuses) must be identical.

    .venv/bin/python bench/execute_throughput.py --multipl-e ../multipl-e  # all installed
    .venv/bin/python bench/execute_throughput.py --langs lua,ml               # some

MultiPL-E's evaluator (never part of this repository): a MultiPL-E checkout's `evaluation/src`,
given by --multipl-e or $MULTIPLE_E (the folder that holds `evaluation/`), e.g.
    git clone https://github.com/nuprl/MultiPL-E ../multipl-e
It runs as `python main.py --dir IN --output-dir OUT --max-workers W` (its requirement: tqdm);
without it that baseline is skipped with a message. Verdicts are compared as pass/fail (status
OK and exit code 0): MultiPL-E names some failures differently (a rackunit FAILURE is its
"Exception"); every disagreement is listed.

Writes bench/results/execute_throughput.json: per language MultiPL-E's programs/s, ours at the
same workers, `multiple_e_ratio` (ours / MultiPL-E; goal >= 10), `verdicts_agree`, and ours at
1, 2 and 4 workers (`scaling`), with the load average around each measurement (the machine is
shared). `--naive-baseline` adds the earlier baseline: one fresh interpreter per program,
serially, without a sandbox. `--merge` updates only the measured languages.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import platform
import resource
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from multiplt import languages, storage  # noqa: E402
from multiplt.benchmarks.build import build_benchmark  # noqa: E402
from multiplt.evaluation import run_folder  # noqa: E402
from multiplt.execution import files  # noqa: E402
from multiplt.execution.executor import default_workers, execute  # noqa: E402
from multiplt.execution.preflight import missing_binaries  # noqa: E402
from multiplt.languages.base import OK  # noqa: E402
from tests.fixtures import solutions  # noqa: E402

GOAL = 10.0
SCALING_WORKERS = (1, 2, 4)


def make_folder(code: str, folder: str, min_programs: int) -> list[tuple[str, int]]:
    """The completions folder; returns (problem, index) of every program, in execution order."""
    names = list(solutions.load(code))
    bench = os.path.join(folder, "benchmark.jsonl")
    build_benchmark("humaneval", code, bench, problems=names)
    written = solutions.write_completion_folder(bench, code, folder)
    repeats = math.ceil(min_programs / (2 * len(written)))
    order = []
    for name in written:
        uri = storage.join(folder, name + ".json.gz")
        doc = storage.read_json(uri)
        ok, bad = doc["completions"]
        start, end = languages.get(code).comment
        close = f" {end}" if end else ""
        doc["completions"] = [f"{text}\n{start} copy {i}{close}\n"
                              for i in range(repeats) for text in (ok, bad)]
        storage.write_json(uri, doc)
        order += [(name, i) for i in range(len(doc["completions"]))]
    os.unlink(bench)
    os.unlink(bench + ".report.json")
    return order


def cpu_seconds() -> float:
    """CPU time of this process (all threads) and its waited-for children."""
    return sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF,
               resource.RUSAGE_CHILDREN) for f in ("ru_utime", "ru_stime"))


def baseline(code: str, folder: str, order) -> tuple[float, dict]:
    """One fresh interpreter per program, one after another, no sandbox."""
    lang = languages.get(code)
    docs = {name: storage.read_json(storage.join(folder, name + ".json.gz"))
            for name in {n for n, _ in order}}
    verdicts = {}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        for name, i in order:
            path = os.path.join(tmp, f"program.{lang.file_ext}")
            with open(path, "w") as f:
                f.write(files.program(docs[name], docs[name]["completions"][i]))
            try:
                p = subprocess.run(lang.command(path), capture_output=True, text=True,
                                   timeout=lang.timeout, stdin=subprocess.DEVNULL, cwd=tmp)
                verdicts[(name, i)] = (lang.classify(p.returncode, p.stdout, p.stderr) == OK
                                       and p.returncode == 0)
            except subprocess.TimeoutExpired:
                verdicts[(name, i)] = False
        return time.perf_counter() - start, verdicts


def _verdicts(folder: str) -> dict:
    """(problem, index) -> passed, from a results folder (ours or MultiPL-E's)."""
    verdicts = {}
    for uri in storage.ls(folder):
        if uri.endswith(run_folder.RESULTS_SUFFIX):
            doc = storage.read_json(uri)
            for i, r in enumerate(doc["results"]):
                verdicts[(doc["name"], i)] = r["status"] == "OK" and r["exit_code"] == 0
    return verdicts


def ours(folder: str, workers: int) -> tuple[float, dict, str]:
    with tempfile.TemporaryDirectory(prefix="bench-ours-") as out:
        start = time.perf_counter()
        counts = execute(folder, out_uri=out, workers=workers)
        seconds = time.perf_counter() - start
        return seconds, _verdicts(out), counts["sandbox"]


def multiple_e_src(flag: str | None) -> str | None:
    """MultiPL-E's evaluation/src, from the flag or $MULTIPLE_E; None (with a message) when absent."""
    root = flag or os.environ.get("MULTIPLE_E")
    src = os.path.join(root, "evaluation", "src") if root else None
    if not src or not os.path.isfile(os.path.join(src, "main.py")):
        print("MultiPL-E baseline skipped: no MultiPL-E checkout (give --multipl-e DIR or "
              "MULTIPLE_E=DIR, the folder holding evaluation/src; see this file's docstring)"
              + (f"; {src} has no main.py" if src else ""), flush=True)
        return None
    return src


def _repo_relative(arg: str) -> str:
    """A path argument as seen from the repo (results name no folder of this machine)."""
    return os.path.relpath(arg, ROOT) if os.path.isabs(arg) and os.path.exists(arg) else arg


def multiple_e(src: str, folder: str, workers: int) -> tuple[float, dict]:
    """MultiPL-E's own evaluator on the same folder, as a new user runs it."""
    with tempfile.TemporaryDirectory(prefix="bench-multiple-e-") as out:
        start = time.perf_counter()
        subprocess.run([sys.executable, "main.py", "--dir", folder, "--output-dir", out,
                        "--max-workers", str(workers)], cwd=src, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        return seconds, _verdicts(out)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def code_version() -> dict:
    """The commit measured, and whether the code (multiplt/, bench/) differs from it."""
    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return {"commit": git("rev-parse", "HEAD") or None,
            "dirty": bool(git("status", "--porcelain", "--", "multiplt", "bench", ":!bench/results"))}


def machine() -> dict:
    model = ""
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"hostname": platform.node(), "cpus": os.cpu_count(),
            "cores_available": len(os.sched_getaffinity(0)), "cpu_model": model,
            "kernel": platform.release(), "python": platform.python_version(),
            "loadavg_at_start": os.getloadavg()}


def figure(report: dict, path: str) -> None:
    """An SVG bar chart: programs/s per language, ours at each worker count and MultiPL-E."""
    langs = [(c, e) for c, e in report["languages"].items() if "scaling" in e]
    series = [(f"ours, {w} worker{'s' * (w > 1)}", lambda e, w=w: e["scaling"].get(str(w), {}))
              for w in SCALING_WORKERS]
    series.append((f"MultiPL-E, {report['workers']} workers", lambda e: e.get("multiple_e", {})))
    colors = ["#9ecae1", "#4292c6", "#08519c", "#e6550d"]
    bar, gap, height, top = 22, 30, 260, 40
    width = 80 + len(langs) * (len(series) * bar + gap) + 220
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 90}" '
             'font-family="sans-serif" font-size="12">',
             f'<text x="10" y="20" font-size="14">Programs per second (log scale), '
             f'{report["machine"]["cores_available"]} cores; bench/execute_throughput.py</text>']
    values = [s(e).get("programs_per_s") for _, e in langs for _, s in series]
    hi = math.log10(max(v for v in values if v) * 1.5)
    lo = math.log10(min(v for v in values if v) / 3)
    y = lambda v: top + height - height * (math.log10(v) - lo) / (hi - lo)  # noqa: E731
    x = 60
    for code, entry in langs:
        for i, (_, pick) in enumerate(series):
            v = pick(entry).get("programs_per_s")
            if v:
                parts.append(f'<rect x="{x}" y="{y(v):.1f}" width="{bar - 2}" '
                             f'height="{top + height - y(v):.1f}" fill="{colors[i]}"/>'
                             f'<text x="{x}" y="{y(v) - 3:.1f}" font-size="9">{v:.3g}</text>')
            x += bar
        parts.append(f'<text x="{x - len(series) * bar / 2 - 10}" y="{top + height + 18}">{code}'
                     f'</text>')
        if entry.get("multiple_e_ratio"):
            parts.append(f'<text x="{x - len(series) * bar}" y="{top + height + 34}" '
                         f'font-size="10">{entry["multiple_e_ratio"]:.1f}x MultiPL-E</text>')
        x += gap
    for i, (label, _) in enumerate(series):
        parts.append(f'<rect x="{x + 10}" y="{top + 18 * i}" width="12" height="12" '
                     f'fill="{colors[i]}"/><text x="{x + 28}" y="{top + 18 * i + 10}">{label}</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--langs", default=",".join(solutions.LANGS))
    parser.add_argument("--min-programs", type=int, default=300)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--multipl-e", help="a MultiPL-E checkout (default: $MULTIPLE_E)")
    parser.add_argument("--naive-baseline", action="store_true",
                        help="also time one fresh interpreter per program, serially, no sandbox")
    parser.add_argument("--out", default=str(ROOT / "bench/results/execute_throughput.json"))
    parser.add_argument("--merge", action="store_true",
                        help="keep the other languages' entries already in --out")
    parser.add_argument("--figure-from", metavar="JSON",
                        help="only draw the figure (beside --out, .svg) from an earlier result")
    args = parser.parse_args()
    svg = os.path.splitext(args.out)[0] + "_scaling.svg"
    if args.figure_from:
        with open(args.figure_from) as f:
            figure(json.load(f), svg)
        print(f"wrote {svg}")
        return 0
    src = multiple_e_src(args.multipl_e)
    report = {"command": " ".join(_repo_relative(a) for a in sys.argv), **code_version(),
              "machine": machine(), "workers": args.workers, "goal_multiple_e_ratio": GOAL,
              "multiple_e": src and "evaluation/src/main.py of the MultiPL-E checkout given by "
                                    f"--multipl-e ({_repo_relative(os.path.dirname(os.path.dirname(src)))})",
              "verdict": "passed = status OK and exit code 0", "languages": {}}
    for code in args.langs.split(","):
        missing = missing_binaries(languages.get(code))
        if missing:
            report["languages"][code] = {"skipped": f"{', '.join(missing)} not installed"}
            print(f"{code}: skipped ({', '.join(missing)} not installed)", flush=True)
            continue
        with tempfile.TemporaryDirectory(prefix=f"bench-{code}-") as folder:
            order = make_folder(code, folder, args.min_programs)
            n = len(order)
            entry = {"programs": n, "passing": None,
                     "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            runs = {}
            for workers in dict.fromkeys((args.workers, *SCALING_WORKERS)):
                load0 = _load()
                seconds, verdicts, mode = ours(folder, workers)
                runs[workers] = verdicts
                entry.setdefault("scaling", {})[str(workers)] = {
                    "seconds": round(seconds, 3), "programs_per_s": round(n / seconds, 3),
                    "loadavg_before": load0, "loadavg_after": _load()}
                entry["sandbox"] = mode
                print(f"{code}: ours, {workers} workers: {n / seconds:.2f} programs/s", flush=True)
            our = entry["scaling"][str(args.workers)]
            entry["ours"] = {**our, "workers": args.workers}
            entry["passing"] = sum(runs[args.workers].values())
            theirs = {}
            if src:
                load0 = _load()
                seconds, theirs = multiple_e(src, folder, args.workers)
                entry["multiple_e"] = {"seconds": round(seconds, 3),
                                       "programs_per_s": round(n / seconds, 3),
                                       "workers": args.workers, "loadavg_before": load0,
                                       "loadavg_after": _load()}
                entry["multiple_e_ratio"] = round(seconds / our["seconds"], 3)
                print(f"{code}: MultiPL-E, {args.workers} workers: {n / seconds:.2f} programs/s; "
                      f"ratio {entry['multiple_e_ratio']:.2f}", flush=True)
            if args.naive_baseline:
                load0 = _load()
                base_s, base_v = baseline(code, folder, order)
                entry["naive_baseline"] = {"seconds": round(base_s, 3),
                                           "programs_per_s": round(n / base_s, 3),
                                           "loadavg_before": load0, "loadavg_after": _load()}
                theirs = theirs or base_v
        mine = runs[args.workers]
        disagree = sorted(f"{k[0]}#{k[1]}: {'pass' if theirs.get(k) else 'fail'} (baseline) vs "
                          f"{'pass' if mine.get(k) else 'fail'} (ours)"
                          for k in order if theirs and theirs.get(k) != mine.get(k))
        disagree += sorted(f"{k[0]}#{k[1]}: ours with {w} workers differs"
                           for w, v in runs.items() for k in order if v.get(k) != mine.get(k))
        entry["verdicts_agree"] = not disagree if theirs else None
        entry["disagreements"] = disagree
        if src:
            entry["goal_met"] = entry["multiple_e_ratio"] >= GOAL and not disagree
        report["languages"][code] = entry
    report["machine"]["loadavg_at_end"] = os.getloadavg()
    if args.merge and os.path.exists(args.out):
        # Keep the other languages' entries of an earlier run (each carries its own command,
        # time and load averages).
        with open(args.out) as f:
            earlier = json.load(f)
        report["languages"] = {**earlier.get("languages", {}), **report["languages"]}
        report["command"] = "; ".join(dict.fromkeys([earlier.get("command", ""), report["command"]]))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    figure(report, svg)
    print(f"wrote {args.out} and {svg}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
