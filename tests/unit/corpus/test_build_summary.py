"""What `multiplt corpus build` (and `corpus merge`) says it did: the functions kept of those
found and the documents they came from (a table's rows, not its files); a WARNING when nothing is
kept, naming why (exit 0: an empty result is a result); the shard log counts a table's rows as
table rows and a folder's files as files."""

import json

import polars as pl

from multiplt import cli

NO_PYTHON = ["def f(:\n", "return (\n", "class\n", "x = = 1\n"]
GOOD = 'def double(x):\n    """Twice x."""\n    y = x * 2\n    z = y + 0\n    return z\n'


def _lines(err: str, level: str) -> list[str]:
    """The log lines of a level, from the level on (the log lines start with a time)."""
    return [line[line.index(f"{level} "):] for line in err.splitlines() if f" {level} " in line]


def _build(source, out, *extra):
    return cli.main(["corpus", "build", "--source", str(source), "--out", str(out), "--no-typecheck", *extra])


def test_a_table_whose_every_row_is_dropped_says_how_many_rows_were_read(tmp_path, capsys):
    table = tmp_path / "code.parquet"
    pl.DataFrame({"content": NO_PYTHON, "repo": ["a", "b", "c", "d"]}).write_parquet(table)
    out = tmp_path / "out"
    assert _build(table, out) == 0
    captured = capsys.readouterr()
    assert captured.out == f"0 of 0 functions kept, from 4 documents read (4 do not parse) -> {out}\n"
    assert _lines(captured.err, "WARNING") == [
        f"WARNING multiplt.corpus: corpus kept 0 of 0 functions, from 4 documents read (syntax_error 4 "
        f"(documents that do not parse)): {out}/functions holds no row; {out}/excluded gives each "
        "dropped row's reason"]
    shard_line = [line for line in _lines(captured.err, "INFO") if "functions kept," in line]
    assert len(shard_line) == 1 and shard_line[0].startswith(
        "INFO multiplt.corpus: corpus shard 0/1: 4 table rows read, 0 functions kept, 4 rows excluded")
    assert json.loads((out / "funnel.json").read_text())["files"] == {"read": 4, "syntax_error": 4}

    # a rerun (and `corpus merge`) writes nothing and says the same
    for argv in (["corpus", "build", "--source", str(table), "--out", str(out), "--no-typecheck"],
                 ["corpus", "merge", "--out", str(out)]):
        assert cli.main(argv) == 0
        again = capsys.readouterr()
        assert again.out == captured.out and _lines(again.err, "WARNING") == _lines(captured.err, "WARNING")


def test_functions_dropped_by_the_filters_are_named_in_the_warning(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text("def f(x):\n    return x\n")  # no docstring
    (src / "b.py").write_text("def g(:\n")
    out = tmp_path / "out"
    assert _build(src, out) == 0
    captured = capsys.readouterr()
    assert captured.out == f"0 of 1 functions kept, from 2 documents read (1 do not parse) -> {out}\n"
    warning = _lines(captured.err, "WARNING")
    assert len(warning) == 1 and warning[0].startswith(
        "WARNING multiplt.corpus: corpus kept 0 of 1 functions, from 2 documents read (syntax_error 1 "
        "(documents that do not parse), no_docstring 1): ")
    assert any(line.startswith("INFO multiplt.corpus: corpus shard 0/1: 2 files read, 0 functions kept")
               for line in _lines(captured.err, "INFO"))


def test_a_build_that_keeps_functions_does_not_warn(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "m.py").write_text(GOOD)
    out = tmp_path / "out"
    assert _build(src, out) == 0
    captured = capsys.readouterr()
    assert captured.out == f"1 of 1 functions kept, from 1 document read -> {out}\n"
    assert _lines(captured.err, "WARNING") == []
    assert any(line.startswith("INFO multiplt.corpus: corpus shard 0/1: 1 file read, 1 functions kept")
               for line in _lines(captured.err, "INFO"))
