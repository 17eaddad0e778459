"""SIGTERM (an Airflow task killed or timed out, `docker stop`) ends a `multiplt` command as Ctrl-C
does: its `finally` blocks run, it says "terminated" and exits 143 (multiplt/cli.py Terminated).
Each test runs a command of its own (planted through `command_modules`) in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

COMMAND = '''
import os, sys, time

def register(subparsers):
    p = subparsers.add_parser("nap")
    p.add_argument("marker")
    p.add_argument("--slow-cleanup", action="store_true")
    p.add_argument("--fork", action="store_true")
    p.set_defaults(func=nap)

def nap(args):
    if args.fork:  # a forked worker: the parent's handler must not keep it alive
        child = os.fork()
        if child == 0:  # says so once it runs Python code (a signal before that may be lost)
            print(f"child {os.getpid()}", flush=True)
            time.sleep(60)
            os._exit(0)
        _, status = os.waitpid(child, 0)
        print(f"child ended: signal {os.WTERMSIG(status) if os.WIFSIGNALED(status) else None}", flush=True)
        return 0
    try:
        print("ready", flush=True)
        time.sleep(60)
    finally:
        if args.slow_cleanup:
            print("cleaning", flush=True)
            time.sleep(1)
        with open(args.marker, "w") as f:
            f.write("cleaned")
'''

RUN = '''
import sys
sys.path.insert(0, sys.argv[1])
from multiplt import cli
modules = cli.command_modules
cli.command_modules = lambda: modules() + ["napcmd"]
sys.exit(cli.main(sys.argv[2:]))
'''


def start(tmp_path, *args):
    (tmp_path / "napcmd.py").write_text(textwrap.dedent(COMMAND))
    return subprocess.Popen([sys.executable, "-c", RUN, str(tmp_path), "nap", str(tmp_path / "marker"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigterm_runs_the_commands_cleanup_and_exits_143(tmp_path):
    proc = start(tmp_path)
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert (tmp_path / "marker").read_text() == "cleaned"
    assert err.strip().splitlines()[-1] == "multiplt nap: terminated"


def test_a_second_sigterm_does_not_cut_the_cleanup_short(tmp_path):
    proc = start(tmp_path, "--slow-cleanup")
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.stdout.readline() == "cleaning\n"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert (tmp_path / "marker").read_text() == "cleaned"


def test_a_forked_worker_still_dies_of_sigterm(tmp_path):
    proc = start(tmp_path, "--fork")
    line = proc.stdout.readline()
    assert line.startswith("child "), line
    os.kill(int(line.split()[1]), signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.strip() == f"child ended: signal {int(signal.SIGTERM)}"


def test_the_handler_is_put_back_after_an_in_process_call(tmp_path):
    """Tests and embedding code call cli.main in-process: it leaves SIGTERM as it found it."""
    from multiplt import cli

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_while_an_error_is_reported_still_exits_143(tmp_path, monkeypatch, capsys):
    """Terminated raised outside the command (here: while its error is being reported) is caught
    by main too: one line, 143, no traceback."""
    from multiplt import cli
    from multiplt.errors import MultipltError

    (tmp_path / "failcmd.py").write_text(textwrap.dedent('''
        from multiplt.errors import MultipltError

        def register(subparsers):
            subparsers.add_parser("fail").set_defaults(func=fail)

        def fail(args):
            raise MultipltError("bad input")
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    modules = cli.command_modules
    monkeypatch.setattr(cli, "command_modules", lambda: modules() + ["failcmd"])

    def terminated_meanwhile():
        raise cli.Terminated()

    monkeypatch.setattr(cli, "end_progress_bars", terminated_meanwhile)
    assert cli.main(["fail"]) == 143
    assert capsys.readouterr().err.strip().splitlines()[-1] == "multiplt: terminated"
    assert issubclass(cli.Terminated, KeyboardInterrupt) and not issubclass(MultipltError, KeyboardInterrupt)
