"""A command line argparse refuses is one line, `multiplt CMD: error: ...`, exit 2 (README: "2 bad
input (one line naming the problem)"): before, argparse printed the command's whole usage block
first (20 lines for `multiplt train --epochs 1.5`, 14 for `evaluate --n x`, 8 for `corpus build
... --workers x`). `--help` still prints the usage."""

from __future__ import annotations

import subprocess
import sys

import pytest

from multiplt import cli
from tests.unit.test_cli import command_paths


def run(*args):
    return subprocess.run([sys.executable, "-m", "multiplt", *args], capture_output=True, text=True)


@pytest.mark.parametrize("argv, line", [
    (["train", "--epochs", "1.5"], "multiplt train: error: argument --epochs: invalid int value: '1.5'"),
    (["evaluate", "--n", "x"], "multiplt evaluate: error: argument --n: invalid int value: 'x'"),
    (["corpus", "build", "--source", "s", "--out", "o", "--workers", "x"],
     "multiplt corpus build: error: argument --workers: invalid int value: 'x'"),
    (["corpus"], "multiplt corpus: error: the following arguments are required: SUBCOMMAND"),
    (["score"], "multiplt score: error: the following arguments are required: --in"),
    # an unknown option is named by the command it was given to, not by `multiplt`
    (["train", "--bogus"], "multiplt train: error: unrecognized arguments: --bogus"),
    (["corpus", "build", "--source", "s", "--out", "o", "--bogus", "x"],
     "multiplt corpus build: error: unrecognized arguments: --bogus x"),
    (["--bogus"], "multiplt: error: unrecognized arguments: --bogus"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_a_usage_error_is_one_line(argv, line):
    result = run(*argv)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", line + "\n")


def test_an_unknown_command_is_one_line_with_the_choices():
    result = run("no-such-command")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("multiplt: error: argument COMMAND: invalid choice: "
                                    "'no-such-command' (choose from ")
    assert result.stderr.count("\n") == 1 and "'train'" in result.stderr


@pytest.mark.parametrize("path", command_paths(), ids=" ".join)
def test_every_subcommand_parser_errs_in_one_line(path, capsys):
    """Subparsers are made of their parent's class (add_subparsers' parser_class): each one."""
    with pytest.raises(SystemExit) as exited:
        cli.main([*path, "--no-such-option-anywhere"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"multiplt {' '.join(path)}: error: ") and err.count("\n") == 1, err


def test_help_still_prints_the_usage():
    result = run("train", "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: multiplt train [-h]")
    assert "--epochs EPOCHS" in result.stdout
