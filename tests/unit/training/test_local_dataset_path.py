"""`--dataset ./nosuchdir` (or `../d`, `/d`, `~/d`) is spelled as a local path, which no Hub
dataset name is: a missing one "does not exist", never a Hub query for that name."""

import sys
import types

import pytest

from multiplt.errors import MultipltError
from multiplt.training.data import load_texts, storage_files


@pytest.fixture
def no_hub(monkeypatch):
    def load_dataset(*args, **kwargs):
        raise AssertionError("the Hub was asked for a local path")
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))


@pytest.mark.parametrize("spelled", ["./nosuchdir", "../nosuchdir", "ABS", "./nosuch/deeper/",
                                     "~/nosuchdir"])
def test_a_missing_local_path_does_not_exist(tmp_path, monkeypatch, no_hub, spelled):
    (tmp_path / "here").mkdir()
    (tmp_path / "home").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    dataset = str(tmp_path / "nosuchdir") if spelled == "ABS" else spelled
    for read in (lambda: load_texts(dataset, "lua"), lambda: storage_files(dataset, "lua")):
        with pytest.raises(MultipltError) as caught:
            read()
        assert str(caught.value) == f"dataset {dataset} does not exist"


def test_a_folder_below_home_is_read_from_there(tmp_path, monkeypatch, no_hub):
    """`~/d` is the folder d of $HOME, from any working folder."""
    import polars as pl

    (tmp_path / "home" / "d").mkdir(parents=True)
    (tmp_path / "here").mkdir()
    pl.DataFrame({"content": ["x = 1"]}).write_parquet(tmp_path / "home" / "d" / "lua.parquet")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path / "here")
    assert storage_files("~/d", "lua") == ["~/d/lua.parquet"]
    assert load_texts("~/d", "lua") == ["x = 1"]


class HubTable:
    column_names = ["content"]

    def __len__(self):
        return 1

    def __getitem__(self, column):
        return ["x"]


def test_a_hub_name_is_still_asked_of_the_hub(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    asked = []
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(
        load_dataset=lambda name, split: asked.append((name, split)) or HubTable()))
    assert storage_files("nuprl/MultiPL-T", "lua") is None
    assert load_texts("nuprl/MultiPL-T", "lua") == ["x"]
    assert asked == [("nuprl/MultiPL-T", "lua")]
