"""An unknown language is named with the flag that gave it, in every command that takes --lang:
one line `multiplt CMD: error: --lang SPEC: unknown language 'X'; known: ...`, exit 2, nothing
written (before: benchmark build, translate and train said only "unknown language 'X'")."""

from __future__ import annotations

import pytest

from multiplt import cli, languages


def _argv(command: str, lang: str, out: str, tmp_path) -> list[str]:
    return {
        "benchmark": ["benchmark", "build", "--lang", lang, "--out", f"{out}/humaneval.jsonl"],
        "translate": ["translate", "--tests", str(tmp_path / "tests"), "--lang", lang, "--out", out,
                      "--backend", "replay", "--replay-source", str(tmp_path / "{lang}.jsonl")],
        "train": ["train", "--dataset", str(tmp_path / "data"), "--base", "org/base", "--lang", lang,
                  "--experiment", "multiplt", "--out", out],
        "evaluate": ["evaluate", "--lang", lang, "--out", out, "--model", "org/model"],
    }[command]


# benchmark build and train take one language; translate and evaluate a comma-separated list
@pytest.mark.parametrize("command, lang", [
    ("benchmark", "perlx"), ("translate", "perlx"), ("translate", "rkt,perlx"), ("train", "perlx"),
    ("evaluate", "perlx"), ("evaluate", "rkt,perlx")])
def test_unknown_language_names_the_flag(command, lang, tmp_path, capsys):
    unknown = "perlx"
    out = tmp_path / "out"
    assert cli.main(_argv(command, lang, str(out), tmp_path)) == 2
    captured = capsys.readouterr()
    known = ", ".join(languages.names())
    assert captured.err.splitlines() == [
        f"multiplt {command}: error: --lang {lang}: unknown language {unknown!r}; known: {known}"]
    assert captured.out == ""
    assert not out.exists()


def test_benchmark_build_takes_one_language(tmp_path, capsys):
    from multiplt import cli

    out = tmp_path / "b.jsonl"
    assert cli.main(["benchmark", "build", "--lang", "rkt,lua", "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "multiplt benchmark: error: --lang rkt,lua: benchmark build takes one language code; run "
        "it once per language, or `multiplt evaluate --lang rkt,lua`")
    assert not out.exists()
