"""`multiplt --help` lists exactly the registered commands, each of which (and each of its
subcommands) has working help; `multiplt --version` works; unknown commands fail."""

import argparse
import importlib
import re
import subprocess
import sys

import pytest

from multiplt import __version__, cli


def run(*args):
    return subprocess.run([sys.executable, "-m", "multiplt", *args], capture_output=True, text=True)


def listed_commands() -> set[str]:
    """The command names in the `positional arguments` section of `multiplt --help`."""
    out = run("--help").stdout
    section = out.split("positional arguments:", 1)[1].split("\noptions:", 1)[0]
    return set(re.findall(r"^    (\S+)", section, re.M))


def registered_commands() -> set[str]:
    sub = argparse.ArgumentParser().add_subparsers()
    for name in cli.COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return set(sub.choices)


def command_paths() -> list[tuple[str, ...]]:
    """Every command and subcommand path, e.g. ("results",), ("results", "record")."""
    paths = []

    def walk(parser, prefix):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    paths.append(prefix + (name,))
                    walk(child, prefix + (name,))

    walk(cli.build_parser(), ())
    return paths


def test_version():
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"multiplt {__version__}"


def test_help_lists_exactly_the_registered_commands():
    listed = listed_commands()
    assert listed, "multiplt --help lists no commands"
    assert listed == registered_commands()


def test_every_command_module_is_registered_once():
    assert len(cli.COMMAND_MODULES) == len(set(cli.COMMAND_MODULES))
    for name in cli.COMMAND_MODULES:
        assert name.startswith("multiplt.commands."), name


@pytest.mark.parametrize("path", command_paths(), ids=" ".join)
def test_each_command_has_help(path):
    result = run(*path, "--help")
    assert result.returncode == 0, result.stderr
    assert f"multiplt {' '.join(path)}" in result.stdout
    assert len(result.stdout.strip().splitlines()) > 2  # more than a bare usage line


def test_unknown_command_fails():
    result = run("no-such-command")
    assert result.returncode != 0 and "no-such-command" in result.stderr


def test_no_command_prints_help_and_fails():
    result = run()
    assert result.returncode == 2 and "COMMAND" in result.stdout
