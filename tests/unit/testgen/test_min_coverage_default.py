"""MultiPL-T's coverage threshold, 90 %, is the default both ways of running testgen: the
Python API (TestgenConfig) and the CLI (--min-coverage), which takes it from the same place."""

from __future__ import annotations

from multiplt.cli import build_parser
from multiplt.testgen.config import TestgenConfig


def test_the_python_api_defaults_to_90():
    assert TestgenConfig(functions="file:///f", out="file:///o").min_coverage == 90


def test_the_cli_default_is_the_config_s():
    args = build_parser().parse_args(["testgen", "--functions", "file:///f", "--out", "file:///o"])
    assert args.min_coverage == TestgenConfig(functions="file:///f", out="file:///o").min_coverage
