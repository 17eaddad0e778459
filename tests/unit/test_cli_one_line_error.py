"""A library's multi-line error text (huggingface_hub puts its cause on a line of its own) is
printed as the one `multiplt CMD: error: ...` line."""

import sys

import pytest

from multiplt import cli, storage


def test_a_multi_line_message_is_one_line():
    assert cli.one_line("tokenizer 'x' ...: 401 Client Error.\n\n  Repository Not Found\r\n") == (
        "tokenizer 'x' ...: 401 Client Error. Repository Not Found")
    assert cli.one_line("no  break: 'a  b'") == "no  break: 'a  b'"  # blanks inside a line stay


def test_a_hub_error_of_two_lines_is_one_error_line(tmp_path, tiny_model, capsys, monkeypatch):
    import huggingface_hub

    def refused(*args, **kwargs):
        raise OSError("404 Client Error. (Request ID: Root=1-x)\n\nRepository Not Found for url: "
                      "https://huggingface.co/api/models/nosuchtok/revision/main.")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", refused)
    bench = str(tmp_path / "bench.jsonl")
    storage.write_jsonl(bench, [{"name": "HumanEval_0_f", "language": "lua", "prompt": "local function f(x)\n",
                                 "tests": "", "stop_tokens": ["\nend"]}])
    code = cli.main(["generate", "--benchmark", bench, "--model", tiny_model, "--tokenizer", "nosuchtok",
                     "--n", "1", "--out", str(tmp_path / "g")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines()[-1] == (
        "multiplt generate: error: tokenizer 'nosuchtok' is not a local folder or storage URI, and "
        "cannot be downloaded from the Hub (revision None): 404 Client Error. (Request ID: Root=1-x) "
        "Repository Not Found for url: https://huggingface.co/api/models/nosuchtok/revision/main.")
    assert [line for line in err.splitlines() if "Repository Not Found" in line] == err.splitlines()[-1:]
    assert not (tmp_path / "g").exists()


@pytest.mark.parametrize("text", ["first\nsecond", "first\n\nsecond\n"])
def test_the_cli_prints_one_line(tmp_path, monkeypatch, capsys, text):
    from multiplt import commands

    (tmp_path / "twolines.py").write_text(
        "from multiplt.errors import MultipltError\n\n\n"
        "def register(subparsers):\n"
        "    subparsers.add_parser('twolines', help='fail').set_defaults(func=run)\n\n\n"
        "def run(args):\n"
        f"    raise MultipltError({text!r})\n")
    monkeypatch.setattr(commands, "__path__", [*commands.__path__, str(tmp_path)])
    monkeypatch.delitem(sys.modules, "multiplt.commands.twolines", raising=False)
    try:
        assert cli.main(["twolines"]) == 2
    finally:
        sys.modules.pop("multiplt.commands.twolines", None)
    assert capsys.readouterr().err == "multiplt twolines: error: first second\n"
