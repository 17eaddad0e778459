"""A revision a local model folder cannot have is refused naming the flag the user gave:
`--base-revision` for train's base model, `--revision` for generate's model."""

import json

import pytest

from multiplt import cli
from multiplt.errors import MultipltError
from multiplt.generation.model_source import resolve_model


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    return str(tmp_path / "m")


@pytest.mark.parametrize("what,flag", [("model", "--revision"), ("base model", "--base-revision")])
def test_the_error_names_the_flag(folder, what, flag):
    with pytest.raises(MultipltError) as caught:
        resolve_model(folder, "nosuch", what=what, hub=False)
    assert str(caught.value) == (f"{flag} 'nosuch' given for the local folder {folder}, which has no "
                                 "revisions or training manifest tag of that name")


def test_train_names_base_revision(tmp_path, folder, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"content": "x = 1"}) + "\n")
    code = cli.main(["train", "--dataset", str(data), "--lang", "lua", "--experiment", "t", "--base", folder,
                     "--base-revision", "nosuch", "--out", str(tmp_path / "out"), "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines()[-1] == (f"multiplt train: error: --base-revision 'nosuch' given for the local "
                                    f"folder {folder}, which has no revisions or training manifest tag "
                                    "of that name")
    assert not (tmp_path / "out").exists()


def test_generate_keeps_revision(tmp_path, folder, capsys):
    bench = tmp_path / "b.jsonl"
    bench.write_text(json.dumps({"name": "HumanEval_0_f", "language": "lua", "prompt": "local function f(x)\n",
                                 "tests": "", "stop_tokens": ["\nend"]}) + "\n")
    code = cli.main(["generate", "--benchmark", str(bench), "--model", folder, "--revision", "nosuch",
                     "--n", "1", "--out", str(tmp_path / "g")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines()[-1] == (f"multiplt generate: error: --revision 'nosuch' given for the local "
                                    f"folder {folder}, which has no revisions or training manifest tag "
                                    "of that name")
    assert not (tmp_path / "g").exists()
