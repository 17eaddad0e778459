"""`multiplt --help` lists exactly the registered commands, each of which has working help."""

import importlib
import re
import subprocess
import sys

import pytest

from multiplt import __version__, cli


def run(*args):
    return subprocess.run([sys.executable, "-m", "multiplt", *args], capture_output=True, text=True)


def listed_commands() -> set[str]:
    out = run("--help").stdout
    match = re.search(r"\{([^}]*)\}", out)
    return set(match.group(1).split(",")) if match else set()


def registered_commands() -> set[str]:
    import argparse

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    for name in cli.COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return set(sub.choices)


def test_version():
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"multiplt {__version__}"


def test_help_lists_exactly_the_registered_commands():
    assert listed_commands() == registered_commands()


@pytest.mark.parametrize("command", sorted(registered_commands()))
def test_each_command_has_help(command):
    result = run(command, "--help")
    assert result.returncode == 0, result.stderr
    assert f"multiplt {command}" in result.stdout


def test_unknown_command_fails():
    assert run("no-such-command").returncode != 0
