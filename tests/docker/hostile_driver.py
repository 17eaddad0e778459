"""Runs the hostile subset through `multiplt execute` where it is started (the sandbox image's
container, or this machine for the local comparison) and prints what the test checks, as JSON.

    python hostile_driver.py RUN_DIR VICTIM_DIR LANG[,LANG...] CASE[,CASE...]

It opens a TCP listener on 127.0.0.1 (the programs try to connect to it), writes one problem per
(language, attack) to RUN_DIR (completion 0 the attack, completion 1 a known-good program), runs
`multiplt execute --in RUN_DIR --timeout 5`, then reports the listener's connections and, where
it is its PID namespace's init (in a container), every process still alive besides itself.
Trusted test code; only the programs it writes are hostile.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import time

from multiplt import languages
from multiplt.execution import preflight

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from tests.unit.execution.hostile_programs import COMMENT, PROGRAMS, fill  # noqa: E402

TIMEOUT_S = 5


def main(run_dir: str, victim: str, langs: list[str], cases: list[str]) -> dict:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        for code in langs:
            good = preflight.known_program(languages.get(code), good=True)
            for case in cases:
                tag = f"{COMMENT[code]} after {case}" + (" *)" if code == "ml" else "")
                doc = {"name": f"hostile_{code}_{case}", "language": code, "prompt": "",
                       "tests": "", "completions": [fill(PROGRAMS[code][case], port, victim, 1),
                                                    good + "\n" + tag],
                       "stop_tokens": [], "temperature": 0.0, "top_p": 1.0, "max_tokens": 0}
                with gzip.open(os.path.join(run_dir, f"hostile_{code}_{case}.json.gz"), "wt") as f:
                    json.dump(doc, f)
        start = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "multiplt", "execute", "--in", run_dir,
                               "--timeout", str(TIMEOUT_S), "--workers", "2"],
                              capture_output=True, text=True)
        seconds = time.monotonic() - start
        connections = 0
        while True:
            try:
                listener.accept()[0].close()
                connections += 1
            except BlockingIOError:
                break
    left = []
    if os.getpid() == 1:  # the container's init: every other process is a leftover
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    state = f.read().rsplit(b")", 1)[1].split()[0].decode()
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")[:200]
            except OSError:
                continue
            if int(pid) != 1 and state != "Z":
                left.append(f"{pid} ({state}): {cmd}")
    statuses = {}
    for name in sorted(os.listdir(run_dir)):
        if name.endswith(".results.json.gz"):
            with gzip.open(os.path.join(run_dir, name), "rt") as f:
                results = json.load(f)["results"]
            statuses[name.split(".")[0]] = [r["status"] for r in results]
    return {"exit_code": proc.returncode, "stderr": proc.stderr[-3000:], "seconds": seconds,
            "uid": os.getuid(), "connections": connections, "left": left, "statuses": statuses}


if __name__ == "__main__":
    run_dir, victim, langs, cases = sys.argv[1:5]
    print(json.dumps(main(run_dir, victim, langs.split(","), cases.split(","))))
