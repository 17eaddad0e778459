"""Reading a path below a file (`afile/x.yaml`, where `afile` is a file) is "no such file", as a
missing path is: never a NotADirectoryError traceback."""

from __future__ import annotations

import pytest

from multiplt import cli, storage
from multiplt.storage.uri import NotFound


def test_a_path_below_a_file_reads_as_not_found(tmp_path):
    (tmp_path / "afile").write_text("x")
    target = str(tmp_path / "afile" / "x.yaml")
    with pytest.raises(NotFound, match="no such file"):
        storage.read_bytes(target)
    assert not storage.exists(target)


def test_a_recipe_below_a_file_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    code = cli.main(["train", "--recipe", "afile/x.yaml", "--print-config"])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.splitlines() == ["multiplt train: error: recipe file afile/x.yaml does not exist"]
