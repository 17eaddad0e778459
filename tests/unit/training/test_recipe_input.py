"""A recipe file is read strictly: UTF-8 YAML, one mapping, no key twice, each value of its field's
type; anything else is one error line naming the file (exit 2), never a traceback nor a value
silently turned into a string. `--recipe` takes a built-in name, a local .yaml path or a storage
URI (file://, s3://)."""

import re
import subprocess
import sys

import pytest
import yaml

from multiplt import cli, storage
from multiplt.errors import MultipltError
from multiplt.training import config as train_config
from multiplt.training.config import load_recipe, resolve

REQUIRED = dict(dataset="d.parquet", base="m", lang="rkt", experiment="multiplt", out="/tmp/o")


def print_config(capsys, recipe: str, *flags: str):
    """`multiplt train --print-config --recipe RECIPE`: (exit code, stdout, stderr lines)."""
    code = cli.main(["train", "--print-config", "--recipe", recipe, *flags])
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


def recipe(tmp_path, data) -> str:
    path = tmp_path / "r.yaml"
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return str(path)


def test_a_recipe_that_is_not_utf8_is_one_line_naming_it(tmp_path):
    path = recipe(tmp_path, b"\xff\xfe: 1\n")
    done = subprocess.run([sys.executable, "-m", "multiplt", "train", "--recipe", path, "--print-config"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"multiplt train: error: recipe {path} is not UTF-8 text: byte 0xff at offset 0"]


@pytest.mark.parametrize("text,where", [
    ("seq_len: [64\n", "line 2, column 1: expected ',' or ']', but got '<stream end>' "
                       "(while parsing a flow sequence at line 1, column 10)"),
    ("seq_len: 64\n\tepochs: 1\n", "line 2, column 1: found character '\\t' that cannot start any token"),
    ("seq_len: 64\n  epochs: 1\n", "line 2, column 9: mapping values are not allowed here"),
    ("a: 1\x00\n", "unacceptable character #x0000: special characters are not allowed"),
])
def test_invalid_yaml_is_one_line_with_line_column_and_reason(tmp_path, capsys, text, where):
    path = recipe(tmp_path, text)
    code, out, err = print_config(capsys, path)
    assert (code, out) == (2, "")
    assert err == [f"multiplt train: error: recipe {path} is not valid YAML: {where}"]


@pytest.mark.parametrize("text,where", [
    ("seq_len: 64\nepochs: 2\nseq_len: 128\n", "line 3, column 1: duplicate key 'seq_len' (first at line 1)"),
    ("{lr: 0.1, lr: 0.2}\n", "line 1, column 11: duplicate key 'lr' (first at line 1)"),
])
def test_a_key_written_twice_is_refused_naming_it(tmp_path, capsys, text, where):
    path = recipe(tmp_path, text)
    code, out, err = print_config(capsys, path)
    assert (code, out) == (2, "")
    assert err == [f"multiplt train: error: recipe {path} is not valid YAML: {where}"]


@pytest.mark.parametrize("text,message", [
    ("text_column: null\n", "text_column must be a string, got null"),
    ("dataset: [a, b]\n", "dataset must be a string, got ['a', 'b'] (a list)"),
    ("base: {x: 1}\n", "base must be a string, got {'x': 1} (a mapping)"),
    ("split: 5\n", "split must be a string, got 5 (an integer); quote it to give it as text"),
    ("base_revision: 2024-01-01\n", "base_revision must be a string, got datetime.date(2024, 1, 1) (date); "
                                    "quote it to give it as text"),
    ("seq_len: '64'\n", "seq_len must be an integer, got '64' (a string)"),
    ("epochs: null\n", "epochs must be an integer, got null"),
    ("lr: '1e-3'\n", "lr must be a number, got '1e-3' (a string)"),
    ("lr: [1]\n", "lr must be a number, got [1] (a list)"),
    ("fast_forward: null\n", "fast_forward must be true or false, got null"),
    ("compile: 'yes'\n", "compile must be true or false, got 'yes' (a string)"),
    ("dataset: [" + "x" * 100 + "]\n", "dataset must be a string, got ['" + "x" * 55 + "... (a list)"),
])
def test_a_value_of_the_wrong_type_is_refused_naming_key_type_and_value(tmp_path, capsys, text, message):
    path = recipe(tmp_path, text)
    code, out, err = print_config(capsys, path)
    assert (code, out) == (2, "")
    assert err == [f"multiplt train: error: recipe {path}: {message}"]


def test_null_stays_allowed_where_the_field_is_optional(tmp_path):
    assert load_recipe(recipe(tmp_path, "compile: null\n")) == {"compile": None}
    assert resolve(recipe(tmp_path, "compile: null\nepochs: 3\n"), REQUIRED).compile is None


def test_numbers_keep_their_yaml_type(tmp_path):
    """An integer is a fine float; `1e-3` is a number (YAML 1.2), not the string YAML 1.1 makes it."""
    values = load_recipe(recipe(tmp_path, "lr: 1e-3\nweight_decay: 0\nadam_eps: 1E-8\nmax_grad_norm: 2\n"))
    assert values == {"lr": 0.001, "weight_decay": 0.0, "adam_eps": 1e-8, "max_grad_norm": 2.0}
    assert all(type(v) is float for v in values.values())
    with pytest.raises(MultipltError, match=re.escape("seq_len must be an integer, got 1000.0 (a number)")):
        load_recipe(recipe(tmp_path, "seq_len: 1e3\n"))
    with pytest.raises(MultipltError, match=re.escape("lr=" + "1" * 400 + " is too large for a number")):
        load_recipe(recipe(tmp_path, "lr: " + "1" * 400 + "\n"))


def test_attn_implementation_is_checked_before_any_work(tmp_path, capsys):
    path = recipe(tmp_path, "attn_implementation: bogus\n")
    code, out, err = print_config(capsys, path)
    assert (code, out) == (2, "")
    assert err == ["multiplt train: error: bad attn_implementation 'bogus'; choose from "
                   "sdpa, eager, flash_attention_2, flash_attention_3, flex_attention"]
    with pytest.raises(MultipltError, match="bad attn_implementation 'flash'"):
        resolve("tiny", dict(REQUIRED, attn_implementation="flash"))
    for name in train_config.ATTN_IMPLEMENTATIONS:
        assert resolve("tiny", dict(REQUIRED, attn_implementation=name)).attn_implementation == name


def test_the_attention_choices_are_ones_transformers_takes():
    pytest.importorskip("transformers")
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    assert set(train_config.ATTN_IMPLEMENTATIONS) <= {"eager", *ALL_ATTENTION_FUNCTIONS.valid_keys()}


def test_a_file_uri_names_a_recipe(tmp_path, capsys):
    path = recipe(tmp_path, "epochs: 3\nlr: 2.0e-4\n")
    code, out, err = print_config(capsys, f"file://{path}")
    assert (code, err) == (0, [])
    values = yaml.safe_load(out)
    assert (values["epochs"], values["lr"], values["recipe"]) == (3, 2e-4, f"file://{path}")
    code, out, err = print_config(capsys, f"file://{tmp_path}/missing.yaml")
    assert (code, out) == (2, "")
    assert err == [f"multiplt train: error: recipe file file://{tmp_path}/missing.yaml does not exist"]


def test_an_s3_uri_names_a_recipe(s3_bucket, capsys):
    uri = f"{s3_bucket}/recipes/short.yaml"
    storage.write_text(uri, "epochs: 2\nseq_len: 128\n")
    code, out, err = print_config(capsys, uri, "--lr", "1e-4")
    assert (code, err) == (0, [])
    values = yaml.safe_load(out)
    assert (values["epochs"], values["seq_len"], values["lr"], values["recipe"]) == (2, 128, 1e-4, uri)
    code, out, err = print_config(capsys, f"{s3_bucket}/recipes/none.yaml")
    assert (code, err) == (2, [f"multiplt train: error: recipe file {s3_bucket}/recipes/none.yaml "
                                "does not exist"])


@pytest.mark.parametrize("name,message", [
    ("s3:/bucket/r.yaml", "bad storage URI 's3:/bucket/r.yaml': a mistyped URI"),
    ("s3:/bucket/r", "bad storage URI 's3:/bucket/r': a mistyped URI"),
    ("http://host/r.yaml", "bad storage URI 'http://host/r.yaml': unsupported scheme 'http'"),
    ("no-such-recipe", "unknown recipe 'no-such-recipe'; known: "),
])
def test_a_recipe_name_that_is_no_recipe_is_one_line(capsys, name, message):
    code, out, err = print_config(capsys, name)
    assert (code, out, len(err)) == (2, "", 1)
    assert err[0].startswith(f"multiplt train: error: {message}")


def test_a_folder_is_no_recipe(tmp_path, capsys):
    (tmp_path / "dir.yaml").mkdir()
    code, out, err = print_config(capsys, str(tmp_path / "dir.yaml"))
    assert (code, out) == (2, "")
    assert err == [f"multiplt train: error: {tmp_path}/dir.yaml is a folder, not a file"]
