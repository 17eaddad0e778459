"""CPU per program of one warm sandbox, serially: what a program costs the machine, which is
what the programs/s of bench/execute_throughput.py are made of on a busy machine.

The reference solutions and their wrong variants of one language (tests/fixtures/solutions, on
the benchmark we build) run one after another, --reps times, in one warm sandbox (forked from
the language's pre-loaded runtime, or with --fresh a fresh interpreter each). The CPU is that of
the sandbox's whole process tree (bubblewrap, the supervisor, the server, every program's
pid 1 and program), read from /proc before the sandbox closes: each live process's own time
plus that of the children it has reaped. A second sandbox that runs one program only gives the
start-up to subtract. The executor's own CPU is reported apart.

    .venv/bin/python bench/fork_cpu.py --lang rkt --reps 2

Prints one JSON object (no file is written: the numbers go into a results notes file by hand).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from multiplt import languages  # noqa: E402
from multiplt.execution.sandbox import Sandbox  # noqa: E402
from tests.fixtures import solutions  # noqa: E402
from tests.integration.test_reference_solutions import _build, _programs  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def _tree_cpu(root: int) -> float:
    """Seconds of CPU of root's descendants: own time plus reaped children's, per live process."""
    parent, cpu = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        parent[int(entry)] = int(fields[1])
        cpu[int(entry)] = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    children: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, list(children.get(root, []))
    while todo:
        pid = todo.pop()
        total += cpu[pid]
        todo += children.get(pid, [])
    return total / TICK


def _batch(lang, programs: list[str], reps: int, preload: bool) -> tuple[float, float, int]:
    """(tree CPU s, executor CPU s, programs run) of one sandbox: one program, then reps x all."""
    self0 = resource.getrusage(resource.RUSAGE_SELF)
    with Sandbox(warm=True, preload=preload) as sandbox:
        sandbox.prepare(lang)
        sandbox.run(lang, programs[0], lang.timeout)  # started, server loaded
        for _ in range(reps):
            for text in programs:
                sandbox.run(lang, text, lang.timeout)
        tree = _tree_cpu(os.getpid())
    self1 = resource.getrusage(resource.RUSAGE_SELF)
    own = (self1.ru_utime + self1.ru_stime) - (self0.ru_utime + self0.ru_stime)
    return tree, own, reps * len(programs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lang", default="rkt")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--fresh", action="store_true", help="a fresh interpreter per program")
    args = parser.parse_args()
    lang = languages.get(args.lang)
    with tempfile.TemporaryDirectory() as tmp:
        rows = _build(args.lang, pathlib.Path(tmp) / "benchmark.jsonl",
                      problems=list(solutions.load(args.lang)))
    programs = list(_programs(args.lang, rows)[0].values())
    start_tree, start_own, _ = _batch(lang, programs, 0, not args.fresh)
    tree, own, n = _batch(lang, programs, args.reps, not args.fresh)
    print(json.dumps({"lang": args.lang, "forked": not args.fresh, "programs": n,
                      "cpu_ms_per_program": round(1000 * (tree - start_tree) / n, 1),
                      "executor_cpu_ms_per_program": round(1000 * (own - start_own) / n, 2),
                      "loadavg": [round(x, 2) for x in os.getloadavg()],
                      "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
