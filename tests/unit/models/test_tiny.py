"""`multiplt model init-tiny` builds a loadable GPTBigCode model + byte-level BPE tokenizer."""

import json

import pytest

from multiplt import cli

pytestmark = pytest.mark.slow


def test_init_tiny_builds_a_loadable_model(tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    out = tmp_path / "tiny"
    assert cli.main(["model", "init-tiny", "--out", str(out), "--steps", "3", "--vocab-size", "400",
                     "--layers", "1", "--hidden", "32", "--corpus-bytes", "100000"]) == 0
    model = transformers.AutoModelForCausalLM.from_pretrained(out)
    tok = transformers.AutoTokenizer.from_pretrained(out)
    assert model.config.model_type == "gpt_bigcode" and model.config.multi_query
    assert len(tok) <= 400 and tok.eos_token == "<|endoftext|>"
    text = "(define (f x) (+ x 1))\nlocal t = {}\nlet x = 1 in x\n"
    assert tok.decode(tok(text)["input_ids"]) == text  # byte-level: lossless
    info = json.loads((out / "multiplt_tiny.json").read_text())
    assert info["corpus"]["python"]["chars"] > 0 and info["config"]["steps"] == 3
    assert "init-tiny" in capsys.readouterr().out


@pytest.mark.parametrize("flags,message", [
    (["--hidden", "30"], "bad tiny model shape"), (["--hidden", "-8"], "bad tiny model shape"),
    (["--hidden", "0"], "bad tiny model shape"), (["--layers", "0"], "bad tiny model shape"),
    (["--corpus-bytes", "0"], "--corpus-bytes must be at least 1"),
])
def test_init_tiny_rejects_bad_shape(tmp_path, capsys, flags, message):
    assert cli.main(["model", "init-tiny", "--out", str(tmp_path / "t"), *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_init_tiny_never_replaces_other_files(tmp_path, capsys):
    """--out holding something else (not a tiny model) is refused before any work and left as it
    is; a file, or a path under a file, too. A folder that holds an earlier tiny model is
    replaced (test above: the builder writes multiplt_tiny.json, which marks it)."""
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "DATA.txt").write_text("important")
    flags = ["--steps", "1", "--vocab-size", "300", "--layers", "1", "--hidden", "8", "--corpus-bytes", "5000"]
    assert cli.main(["model", "init-tiny", "--out", str(precious), *flags]) == 2
    assert "holds other files" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["precious"] and [p.name for p in precious.iterdir()] == ["DATA.txt"]
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert cli.main(["model", "init-tiny", "--out", str(afile), *flags]) == 2
    assert "is a file" in capsys.readouterr().err
    assert cli.main(["model", "init-tiny", "--out", str(afile / "sub"), *flags]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert afile.read_text() == "x"
    # an earlier tiny model is replaced
    (precious / "DATA.txt").unlink()
    (precious / "multiplt_tiny.json").write_text("{}")
    assert cli.main(["model", "init-tiny", "--out", str(precious), *flags]) == 0
    assert json.loads((precious / "multiplt_tiny.json").read_text())["config"]["steps"] == 1
