"""`benchmark build --out afile/b.jsonl` (where `afile` is a file) is refused in one line before
any problem is analysed (running every canonical solution), as generate and corpus refuse it."""

from __future__ import annotations

import pytest

from multiplt import cli
from multiplt.benchmarks import analyze, build


@pytest.fixture
def no_work(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the build ran before --out was checked")
    monkeypatch.setattr(analyze, "analyze", refuse)
    monkeypatch.setattr(build, "build_rows", refuse)


@pytest.mark.parametrize("spelled", ["afile/b.jsonl", "afile/deeper/b.jsonl", "FILE_URI"])
def test_an_out_below_a_file_is_refused_before_any_work(tmp_path, capsys, monkeypatch, no_work, spelled):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    out = f"file://{tmp_path}/afile/b.jsonl" if spelled == "FILE_URI" else spelled
    code = cli.main(["benchmark", "build", "--lang", "rkt", "--limit", "1", "--out", out])
    stdout, err = capsys.readouterr()
    assert (code, stdout) == (2, "")
    assert err.splitlines() == [
        f"multiplt benchmark: error: --out {out}: {tmp_path}/afile is a file, not a folder"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
    assert (tmp_path / "afile").read_text() == "x"
