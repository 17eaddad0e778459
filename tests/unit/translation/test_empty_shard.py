"""A translation shard in which no problem could be built leaves no completion files: its
sandbox step (`multiplt execute --allow-empty`) has nothing to do; without the flag it is an
error as before."""

from multiplt import cli


def test_execute_allow_empty(tmp_path, capsys):
    empty = tmp_path / "completions"
    assert cli.main(["execute", "--in", str(empty), "--allow-empty"]) == 0
    assert '"sandbox": null' in capsys.readouterr().out
    assert cli.main(["execute", "--in", str(empty)]) == 2
    assert f"completions folder {empty} does not exist" in capsys.readouterr().err
    assert not empty.exists()
    empty.mkdir()
    assert cli.main(["execute", "--in", str(empty)]) == 2
    assert "no completion files" in capsys.readouterr().err
