"""The ``multiplt`` entry point.

Each command group is one module in ``multiplt/commands/`` exposing ``register(subparsers)``;
the parser is built from the modules found there (names starting with ``_`` are helpers, not
commands), so adding a command is adding its module. Those modules import only the standard
library and light ``multiplt`` modules at top level, so ``multiplt --help`` is fast and works
with any extra installed; heavy imports (torch, polars, boto3) happen inside the command
functions.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import re
import signal
import sys
import threading

from multiplt import __version__, commands
from multiplt.errors import MultipltError
from multiplt.log import setup_logging


def command_modules() -> list[str]:
    """The command modules in multiplt/commands/, sorted by name."""
    return sorted(f"{commands.__name__}.{m.name}" for m in pkgutil.iter_modules(commands.__path__)
                  if not m.name.startswith("_"))


class Parser(argparse.ArgumentParser):
    """argparse's parser whose bad-input error is the one line `multiplt CMD: error: ...`, exit 2,
    without the usage block argparse prints first (20 lines for `train`); `--help` is unchanged.
    Subcommand parsers are of this class too: add_subparsers makes them of its parser's class."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")

    def parse_args(self, args=None, namespace=None):
        """As argparse's, but an unrecognized argument is reported by the (sub)command it was
        given to, `multiplt train: error: unrecognized arguments: --bogus`, not by `multiplt`."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self._chosen(parsed).error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed

    def _chosen(self, parsed: argparse.Namespace) -> argparse.ArgumentParser:
        """The deepest subcommand parser `parsed` went through (self without one)."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                child = action.choices.get(getattr(parsed, action.dest, None))
                if child is not None:
                    return child._chosen(parsed) if isinstance(child, Parser) else child
        return self


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="multiplt",
        description="MultiPL-T Platform: build benchmarks, generate, execute, score and fine-tune "
        "code LLMs for low-resource programming languages.",
    )
    parser.add_argument("--version", action="version", version=f"multiplt {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in command_modules():
        module = importlib.import_module(name)
        if not hasattr(module, "register"):
            raise ImportError(f"{name} has no register(subparsers); name helper modules _*.py")
        module.register(subparsers)
    return parser


def end_progress_bars() -> None:
    """Close the progress bars a failed or interrupted command left open (multiplt.log.progress
    makes them with tqdm, on stderr), so its error is the last line on stderr, on a line of its
    own: an open bar leaves the cursor after it, and is drawn again when it is collected."""
    std = sys.modules.get("tqdm.std")  # not imported: no bar was made
    if std is None:
        return
    for bar in list(getattr(std.tqdm, "_instances", ())):
        try:
            bar.close()  # its last state stays, followed by a newline
        except Exception:  # a bar whose stream is gone: nothing more to end
            pass


class Terminated(KeyboardInterrupt):
    """SIGTERM (an Airflow task killed or timed out, `docker stop`, `kill`), raised in the main
    thread, so that the command unwinds as on Ctrl-C (its `finally` blocks and interrupt handlers
    run: a train releases its output's lease, the corpus type check stops its batches) and exits
    with 143, the shell's code for SIGTERM. Without it, Python dies at once and runs none of them;
    as PID 1 of a container it would ignore the signal until Docker's SIGKILL."""


def _on_sigterm(pid: int):
    """The SIGTERM handler of the `multiplt` process `pid`: Terminated once; a second SIGTERM while
    the first unwinds is ignored, so that cleanup is not cut short (SIGKILL still ends it). A
    process forked from it (a worker pool) dies of the signal as before."""
    state = {"terminating": False}

    def handler(signum, frame):
        if os.getpid() != pid:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        if state["terminating"]:
            return
        state["terminating"] = True
        raise Terminated()
    return handler


def main(argv: list[str] | None = None) -> int:
    previous = None
    if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
        previous = signal.signal(signal.SIGTERM, _on_sigterm(os.getpid()))
    try:
        return _main(argv)
    except Terminated:  # outside _main's own handlers (parsing, printing an error, shutdown)
        print("multiplt: terminated", file=sys.stderr)
        return 143
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def one_line(message: str) -> str:
    """An error message as one line: a library's multi-line text (huggingface_hub's cause on a
    line of its own) joined at its line breaks, and the blanks around them, by one space."""
    return re.sub(r"\s*[\r\n]+\s*", " ", message).strip()


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except MultipltError as exc:
        end_progress_bars()
        print(f"multiplt {args.command}: error: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        end_progress_bars()
        if isinstance(exc, Terminated):
            print(f"multiplt {args.command}: terminated", file=sys.stderr)
            return 143
        print(f"multiplt {args.command}: interrupted", file=sys.stderr)
        return 130
    logging.shutdown()
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
