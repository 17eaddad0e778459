"""Which parquet files `multiplt testgen --functions` reads: a file, a corpus output root's
functions/, or any other folder of parquet files; never a corpus build's dropped rows
(excluded/, _work/), and never an unmerged corpus build; a dataset without rows is refused. The
optional `tests` column is a list of strings per row."""

from __future__ import annotations

import pathlib
import re

import polars as pl
import pytest

from multiplt.errors import MultipltError
from multiplt.testgen import inputs

FN = 'def add(a, b):\n    """Add."""\n    return a + b\n'


def rows(name: str, n: int = 1, **extra) -> pl.DataFrame:
    return pl.DataFrame([{"content": FN, "id": f"{name}:{i}", "sha1": f"{name}{i}".ljust(40, "0"),
                          "entrypoint": "add", "context": "", **extra} for i in range(n)])


def put(path: pathlib.Path, df: pl.DataFrame | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        (df if df is not None else rows(path.stem)).write_parquet(path)
    else:
        path.write_text("{}")


def corpus_build(root: pathlib.Path, merged: bool) -> None:
    """A corpus build output: shard parts under _work/ (kept and dropped rows), and after the
    merge functions/, excluded/ and corpus_config.json."""
    put(root / "_work" / "config.json")
    put(root / "_work" / "shards" / "00000-of-00001" / "kept.parquet")
    put(root / "_work" / "shards" / "00000-of-00001" / "excluded.parquet")
    if merged:
        put(root / "functions" / "part-00000.parquet", rows("kept", 2))
        put(root / "excluded" / "part-00000.parquet", rows("dropped", 3))
        put(root / "corpus_config.json")
        put(root / "_work" / "merged.json")


def test_a_merged_corpus_root_reads_only_its_functions(tmp_path):
    corpus_build(tmp_path / "c", merged=True)
    functions = [str(tmp_path / "c" / "functions" / "part-00000.parquet")]
    assert inputs.parquet_files(str(tmp_path / "c")) == functions
    assert inputs.read_functions(str(tmp_path / "c"))["id"].to_list() == ["kept:0", "kept:1"]
    assert inputs.parquet_files(str(tmp_path / "c" / "functions")) == functions


def test_an_unmerged_corpus_root_is_refused(tmp_path):
    corpus_build(tmp_path / "c", merged=False)
    with pytest.raises(MultipltError, match=r"corpus build output without functions/ .* run "
                                            r"`multiplt corpus merge --out .*/c` first"):
        inputs.parquet_files(str(tmp_path / "c"))
    # a root holding only its config (the merge writes it with functions/) is one too
    put(tmp_path / "d" / "corpus_config.json")
    put(tmp_path / "d" / "excluded" / "part-00000.parquet")
    with pytest.raises(MultipltError, match="corpus merge"):
        inputs.parquet_files(str(tmp_path / "d"))


def test_a_corpus_root_whose_merge_did_not_finish_is_refused(tmp_path):
    """The merge writes functions/part-* one at a time, then funnel.json, then _work/merged.json
    (with the number of shards): before that marker, functions/ may lack parts."""
    root = tmp_path / "c"
    corpus_build(root, merged=True)
    put(root / "functions" / "part-00001.parquet", rows("more", 3))
    (root / "_work" / "merged.json").write_text('{"shards": 2}')
    assert len(inputs.parquet_files(str(root))) == 2
    (root / "functions" / "part-00001.parquet").unlink()   # a part missing under the marker
    for given in (root, root / "functions"):
        with pytest.raises(MultipltError, match=r"merge has not finished \(no functions/part-00001\.parquet\): "
                                                r"run `multiplt corpus merge --out .*/c` first"):
            inputs.parquet_files(str(given))
    (root / "_work" / "merged.json").unlink()              # interrupted before the marker
    for given in (root, root / "functions"):
        with pytest.raises(MultipltError, match=r"merge has not finished \(no _work/merged\.json\)"):
            inputs.parquet_files(str(given))


def test_dropped_rows_are_never_read(tmp_path):
    corpus_build(tmp_path / "c", merged=True)
    shard = tmp_path / "c" / "_work" / "shards" / "00000-of-00001"
    for given in (tmp_path / "c" / "_work", shard, shard / "kept.parquet", shard / "excluded.parquet"):
        with pytest.raises(MultipltError, match=r"under a corpus build's _work/ folder"):
            inputs.parquet_files(str(given))
    for given in (tmp_path / "c" / "excluded", tmp_path / "c" / "excluded" / "part-00000.parquet"):
        with pytest.raises(MultipltError, match=r"in a corpus build's excluded/ folder"):
            inputs.parquet_files(str(given))
    # a folder above a corpus output (no functions/ of its own) would take both: refused
    with pytest.raises(MultipltError, match=r"c/_work/shards/.*under a corpus build's _work/"):
        inputs.parquet_files(str(tmp_path))


def test_a_testgen_output_is_named_as_such(tmp_path):
    """A testgen output (marked by a shard's work/<shard>/rows.jsonl) holds written tests and
    dropped rows: the error says so, not that it is a corpus build's excluded/ folder."""
    root = tmp_path / "tgo"
    (root / "work" / "shard-all").mkdir(parents=True)
    (root / "work" / "shard-all" / "rows.jsonl").write_text("")
    put(root / "tests" / "shard-all.parquet")
    put(root / "excluded" / "shard-all.parquet")
    put(root / "funnel.json")
    with pytest.raises(MultipltError, match=rf"^functions dataset {re.escape(str(root))} is a testgen output "
                                            r"\(written tests and dropped rows\), not a corpus build's functions"):
        inputs.parquet_files(str(root))
    for given in (root / "excluded", root / "excluded" / "shard-all.parquet"):
        with pytest.raises(MultipltError, match=rf"^functions dataset {re.escape(str(given))} is in the testgen "
                                                rf"output {re.escape(str(root))} \(written tests"):
            inputs.parquet_files(str(given))


def test_a_file_that_is_not_parquet_is_named_as_such(tmp_path):
    (tmp_path / "afile").write_text("not a table")
    with pytest.raises(MultipltError, match=r"afile is not a parquet file \(\*\.parquet\) or a folder of them"):
        inputs.parquet_files(str(tmp_path / "afile"))


def test_any_other_folder_of_parquet_files_is_read_whole(tmp_path):
    put(tmp_path / "mine" / "a.parquet")
    put(tmp_path / "mine" / "more" / "b.parquet")
    put(tmp_path / "mine" / "notes.txt")
    assert inputs.parquet_files(str(tmp_path / "mine")) == [
        str(tmp_path / "mine" / "a.parquet"), str(tmp_path / "mine" / "more" / "b.parquet")]
    assert inputs.read_functions(str(tmp_path / "mine")).height == 2
    assert inputs.parquet_files(f"file://{tmp_path}/mine/a.parquet") == [f"file://{tmp_path}/mine/a.parquet"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(MultipltError, match="holds no parquet files"):
        inputs.parquet_files(str(tmp_path / "empty"))


@pytest.mark.parametrize("tests", [[["assert add(1, 2) == 3"], []], [None, None], [[], []]])
def test_a_tests_column_of_lists_of_strings_or_nulls_is_read(tmp_path, tests):
    put(tmp_path / "f.parquet", rows("t", 2).with_columns(pl.Series("tests", tests)))
    assert inputs.read_functions(str(tmp_path / "f.parquet"))["tests"].to_list() == tests


def test_a_tests_column_of_anything_else_is_refused(tmp_path):
    put(tmp_path / "s.parquet", rows("s", 2, tests="assert add(1, 2) == 3"))
    with pytest.raises(MultipltError, match=r"s.parquet: column tests is String, not a list of strings"):
        inputs.read_functions(str(tmp_path / "s.parquet"))
    put(tmp_path / "n.parquet", rows("n", 2).with_columns(
        pl.Series("tests", [["assert add(1, 2) == 3"], ["assert add(0, 0) == 0", None]])))
    with pytest.raises(MultipltError, match=rf"n.parquet row 1 \(sha1 n1{'0' * 38}\): tests holds a null"):
        inputs.read_functions(str(tmp_path / "n.parquet"))


def test_a_dataset_without_rows_is_refused_naming_it(tmp_path):
    """Nothing to write tests for: one error naming the input, whether its files keep the
    corpus's columns (a corpus build that kept no function) or have none at all."""
    corpus_build(tmp_path / "c", merged=True)
    put(tmp_path / "c" / "functions" / "part-00000.parquet", rows("kept", 2).clear())
    for given in (tmp_path / "c", tmp_path / "c" / "functions",
                  tmp_path / "c" / "functions" / "part-00000.parquet"):
        with pytest.raises(MultipltError, match=rf"^functions dataset {re.escape(str(given))} has no rows$"):
            inputs.read_functions(str(given))
    put(tmp_path / "bare" / "part-0.parquet", pl.DataFrame())
    with pytest.raises(MultipltError, match=r"functions dataset .*bare has no rows"):
        inputs.read_functions(str(tmp_path / "bare"))
    # a file without rows beside one with rows adds nothing, whatever its columns
    put(tmp_path / "bare" / "part-1.parquet", rows("one", 1))
    assert inputs.read_functions(str(tmp_path / "bare"))["id"].to_list() == ["one:0"]
