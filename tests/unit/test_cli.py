"""`multiplt --help` lists exactly the commands of the modules in multiplt/commands/ on disk,
each of which (and each of its subcommands) has working help; a new module there becomes a
command; `multiplt --version` works; unknown commands fail."""

import argparse
import re
import subprocess
import sys

import pytest

from multiplt import __version__, cli, commands
from tests.packaging_facts import commands_on_disk


def run(*args):
    return subprocess.run([sys.executable, "-m", "multiplt", *args], capture_output=True, text=True)


def listed_commands() -> set[str]:
    """The command names in the `positional arguments` section of `multiplt --help`."""
    out = run("--help").stdout
    section = out.split("positional arguments:", 1)[1].split("\noptions:", 1)[0]
    return set(re.findall(r"^    (\S+)", section, re.M))


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


def test_help_lists_exactly_the_commands_of_the_modules_on_disk():
    on_disk = commands_on_disk()
    assert {"generate", "evaluate", "train", "stage"} <= on_disk
    assert listed_commands() == on_disk


def test_a_new_command_module_becomes_a_command(tmp_path, monkeypatch):
    (tmp_path / "hello.py").write_text(
        "def register(subparsers):\n"
        "    p = subparsers.add_parser('hello', help='say hello')\n"
        "    p.set_defaults(func=lambda args: print('hello') or 0)\n")
    (tmp_path / "_helper.py").write_text("X = 1\n")  # helpers are not commands
    monkeypatch.setattr(commands, "__path__", [*commands.__path__, str(tmp_path)])
    monkeypatch.delitem(sys.modules, "multiplt.commands.hello", raising=False)
    try:
        assert "multiplt.commands.hello" in cli.command_modules()
        assert "multiplt.commands._helper" not in cli.command_modules()
        assert cli.main(["hello"]) == 0
    finally:
        sys.modules.pop("multiplt.commands.hello", None)


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


@pytest.mark.parametrize("raised,last", [("MultipltError('no such thing')", "multiplt failing: error: no such thing"),
                                         ("KeyboardInterrupt()", "multiplt failing: interrupted")],
                         ids=["error", "interrupted"])
def test_the_error_line_ends_an_open_progress_bar(tmp_path, raised, last):
    """A command that fails with its bar open: the error (or interrupted) line is the last line
    on stderr, on its own, not glued to the bar and then followed by the bar drawn again."""
    pytest.importorskip("tqdm")
    (tmp_path / "failing.py").write_text(
        "from multiplt.errors import MultipltError\n"
        "from multiplt.log import progress\n\n\n"
        "def register(subparsers):\n"
        "    subparsers.add_parser('failing', help='fail').set_defaults(func=run)\n\n\n"
        "def run(args):\n"
        "    bar = progress(total=3, desc='failing')\n"
        "    bar.update(1)\n"
        f"    raise {raised}\n")
    code = ("import sys; from multiplt import cli, commands; "
            f"commands.__path__.append({str(tmp_path)!r}); sys.exit(cli.main(['failing']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == (130 if "Interrupt" in raised else 2), result.stderr
    assert "/3 [" in result.stderr  # the bar was drawn
    assert result.stderr.endswith("\n") and result.stderr.split("\n")[-2] == last, result.stderr


def test_an_error_after_a_real_command_started_its_bar_is_the_last_line(tmp_path):
    """`evaluate` starts its bar, then finds the benchmark source missing."""
    pytest.importorskip("tqdm")
    missing = str(tmp_path / "nope.jsonl")
    replay = tmp_path / "replay.jsonl"  # a good one: evaluate checks it before the bar
    replay.write_text('{"name": "HumanEval_0_x", "completion": "  return 1"}\n')
    result = run("evaluate", "--lang", "lua", "--source", missing, "--out", str(tmp_path / "eval"),
                 "--backend", "replay", "--replay-source", str(replay))
    assert result.returncode == 2 and "0/4 [" in result.stderr  # the bar was drawn
    assert result.stderr.split("\n")[-2:] == [
        f"multiplt evaluate: error: benchmark source {missing!r} does not exist", ""], result.stderr
