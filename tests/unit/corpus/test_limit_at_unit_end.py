"""`--limit` reached exactly at the end of one table file: the next file is not opened (on S3 it
would be downloaded whole first; a broken next file failed the build)."""

import polars as pl

from multiplt import cli


def test_a_limit_reached_at_a_files_end_opens_no_further_file(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    pl.DataFrame({"content": [f"def f{i}(x: int) -> int:\n    '''Add {i}.'''\n    return x + {i}\n"
                              for i in range(5)]}).write_parquet(src / "a.parquet")
    (src / "b.parquet").write_bytes(b"not a parquet")
    out = tmp_path / "out"
    code = cli.main(["corpus", "build", "--source", str(src), "--out", str(out), "--no-typecheck",
                     "--limit", "5"])
    assert code == 0, capsys.readouterr().err
    assert "b.parquet" not in capsys.readouterr().err
