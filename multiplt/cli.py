"""The ``multiplt`` entry point.

Each command group lives in its own module under ``multiplt.commands`` and exposes
``register(subparsers)``. Those modules import only the standard library at top level, so
``multiplt --help`` is fast and works with any extra installed; heavy imports (torch, polars,
boto3) happen inside the command functions.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from multiplt import __version__
from multiplt.errors import MultipltError
from multiplt.log import setup_logging

# One line per command group. A test checks that `multiplt --help` lists exactly these.
COMMAND_MODULES = [
    "multiplt.commands.generate",
    "multiplt.commands.evaluate",
    "multiplt.commands.model",
    "multiplt.commands.results",
    "multiplt.commands.train",
    "multiplt.commands.benchmark",
    "multiplt.commands.execute",
    "multiplt.commands.score",
    "multiplt.commands.stage",
    "multiplt.commands.testgen",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="multiplt",
        description="MultiPL-T Platform: build benchmarks, generate, execute, score and fine-tune "
        "code LLMs for low-resource programming languages.",
    )
    parser.add_argument("--version", action="version", version=f"multiplt {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except MultipltError as exc:
        print(f"multiplt {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"multiplt {args.command}: interrupted", file=sys.stderr)
        return 130
    logging.shutdown()
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
