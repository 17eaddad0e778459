"""A bad training-config value is named where it was written: a value from the YAML recipe as the
recipe's key, in a message led by `recipe WHERE:`, a value from the command line as its flag.
Before, every message named the flag (`bad --experiment 'a-b'`, `--dataset 's3:/b/x' reads as a
mistyped URI`, `for --lang py`) even when no flag had been given."""

from __future__ import annotations

import pytest

from multiplt import cli
from multiplt.errors import MultipltError
from multiplt.training.config import resolve

REQUIRED = dict(dataset="d.parquet", base="m", lang="rkt", experiment="multiplt", out="file:///tmp/o")

# (the recipe's bad value, what the message says after the source's name)
BAD = [
    ({"experiment": "a-b"}, "experiment 'a-b': use only a-z, 0-9 and _"),
    ({"dataset": "s3:/b/x"}, "dataset 's3:/b/x' reads as a mistyped URI (did you mean 's3://b/x'?)"),
    ({"dataset": "nuprl/MultiPL-T", "lang": "py"}, "dataset nuprl/MultiPL-T has no split 'python' for"),
]


def _message(recipe, overrides) -> str:
    with pytest.raises(MultipltError) as raised:
        resolve(str(recipe), overrides)
    message = str(raised.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("values, says", BAD)
def test_a_bad_value_from_the_recipe_names_the_recipe_and_its_key(tmp_path, monkeypatch, capsys, values, says):
    monkeypatch.chdir(tmp_path)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("".join(f"{key}: {value}\n" for key, value in values.items()))
    flags = {k: v for k, v in REQUIRED.items() if k not in values}
    message = _message(recipe, flags)
    assert message.startswith(f"recipe {recipe}: ") and says in message, message
    for key in values:
        assert f"--{key} {values[key]}" not in message and f"--{key} '{values[key]}'" not in message
    if "lang" in values:
        assert f"for lang {values['lang']} (its splits" in message
    # through the command, --print-config too, with the recipe as the user named it
    assert cli.main(["train", "--recipe", "r.yaml", "--print-config",
                     *[a for k, v in flags.items() for a in (f"--{k}", v)]]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("multiplt train: error: recipe r.yaml: ")
    assert says in captured.err and captured.err.count("\n") == 1


def test_a_bad_value_from_a_flag_names_the_flag_even_over_a_recipe(tmp_path, monkeypatch):
    """A flag overrides the recipe's value for the same key, so the flag is named, not the
    recipe; a value the recipe still gives (lang, when only --dataset is a flag) is named as the
    recipe's."""
    monkeypatch.chdir(tmp_path)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("experiment: x-y\ndataset: s3:/c/y\nlang: rkt\n")  # each overridden below
    for values, says in BAD:
        message = _message(recipe, {**REQUIRED, **values})
        flagged = says.replace("experiment", "--experiment", 1).replace("dataset", "--dataset", 1)
        assert message.startswith((flagged, "bad " + flagged)) and "recipe" not in message, message
        if "lang" in values:
            assert f"for --lang {values['lang']} (its splits" in message
    # --dataset from the command line, lang from the recipe: each named where it came from
    recipe.write_text("lang: py\n")
    message = _message(recipe, {**REQUIRED, "dataset": "nuprl/MultiPL-T", "lang": None})
    assert message.startswith(f"recipe {recipe}: --dataset nuprl/MultiPL-T has no split 'python' "
                              "for lang py (its splits"), message
