"""Recipes carry the paper's hyperparameters; CLI flags override every field; bad input is refused."""

import dataclasses
import re
import subprocess
import sys

import pytest
import yaml

from multiplt.errors import MultipltError
from multiplt.training.config import TrainConfig, load_recipe, recipe_names, resolve

REQUIRED = dict(dataset="d.parquet", base="m", lang="rkt", experiment="multiplt", out="/tmp/o")


def test_starcoderbase_1b_recipe_is_the_papers():
    c = resolve("starcoderbase-1b", REQUIRED)
    assert (c.lr, c.batch_size, c.warmup_steps, c.epochs, c.weight_decay, c.seq_len) == \
        (3e-5, 8, 100, 7, 0.001, 2048)
    assert (c.lr_scheduler, c.max_grad_norm, c.eval_fraction) == ("cosine", 1.0, 0.01)
    # how the batch of 8 is cut and whether to compile: chosen at run time (multiplt/training/speed.py)
    assert (c.micro_batch_size, c.compile) == (0, None)


def test_micro_batch_and_compile_overrides():
    c = resolve("starcoderbase-1b", dict(REQUIRED, micro_batch_size=4, compile=False))
    assert (c.micro_batch_size, c.compile) == (4, False)
    with pytest.raises(MultipltError, match="micro_batch_size"):
        resolve("starcoderbase-1b", dict(REQUIRED, micro_batch_size=-1))


@pytest.mark.parametrize("recipe,epochs,eval_fraction", [
    ("starcoderbase-15b", 10, 0.0025), ("starcoderbase-15b-jl-r", 6, 0.0),
    ("codellama-34b", 5, 0.0025), ("codellama-70b", 5, 0.0025)])
def test_large_model_recipes(recipe, epochs, eval_fraction):
    c = resolve(recipe, REQUIRED)
    assert (c.lr, c.batch_size, c.warmup_steps, c.seq_len) == (2e-5, 32, 10, 2048)
    assert (c.epochs, c.eval_fraction, c.distributed) == (epochs, eval_fraction, "fsdp")
    assert c.gradient_checkpointing


def test_every_recipe_loads_and_names_only_known_fields():
    assert {"starcoderbase-1b", "starcoderbase-15b", "codellama-34b", "codellama-70b"} <= set(recipe_names())
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for name in recipe_names():
        assert set(load_recipe(name)) <= fields


def test_overrides_win_and_split_defaults_to_the_language_split():
    c = resolve("starcoderbase-1b", dict(REQUIRED, epochs=3, lr=1e-4, gradient_checkpointing=True))
    assert (c.epochs, c.lr, c.gradient_checkpointing, c.recipe) == (3, 1e-4, True, "starcoderbase-1b")
    assert c.split == "racket" and c.lang == "rkt"
    assert resolve("starcoderbase-1b", dict(REQUIRED, split="train")).split == "train"
    assert resolve("starcoderbase-1b", dict(REQUIRED, lang="lua")).tag(5) == "lua-multiplt-epoch5"


@pytest.mark.parametrize("bad", ["Multi-PLT", "a b", "x-y", ""])
def test_experiment_must_parse_in_tags(bad):
    with pytest.raises(MultipltError, match="experiment"):
        resolve("starcoderbase-1b", dict(REQUIRED, experiment=bad))


def test_bad_values_are_refused(tmp_path):
    with pytest.raises(MultipltError, match="unknown recipe"):
        resolve("no-such-recipe", REQUIRED)
    with pytest.raises(MultipltError, match="recipe file .*/missing.yaml does not exist"):
        resolve(str(tmp_path / "missing.yaml"), REQUIRED)
    with pytest.raises(MultipltError, match="unknown language"):
        resolve("starcoderbase-1b", dict(REQUIRED, lang="cobol"))
    with pytest.raises(MultipltError, match="micro_batch_size"):
        resolve("starcoderbase-1b", dict(REQUIRED, micro_batch_size=3))
    bad = tmp_path / "r.yaml"
    bad.write_text("learning_rate: 1\n")
    with pytest.raises(MultipltError, match="unknown field 'learning_rate'"):
        resolve(str(bad), REQUIRED)
    bad.write_text("epochs: many\n")
    with pytest.raises(MultipltError, match="epochs must be an integer"):
        resolve(str(bad), REQUIRED)
    for text, message in (("seq_len: 64.9\n", "seq_len must be an integer, got 64.9"),
                          ("epochs: true\n", "epochs must be an integer, got True"),
                          ("lr: false\n", "lr must be a number"),
                          ("lr: .nan\n", "lr and max_grad_norm must be finite"),
                          ("adam_beta1: 1.5\n", "adam_beta1 1.5 and adam_beta2 0.999 must be in"),
                          ("adam_eps: 0\n", "adam_eps 0.0 > 0")):
        bad.write_text(text)
        with pytest.raises(MultipltError, match=re.escape(message)):
            resolve(str(bad), REQUIRED)


def test_cli_flags_cover_every_field_and_print_the_resolved_config():
    out = subprocess.run([sys.executable, "-m", "multiplt", "train", "--print-config", "--recipe",
                          "codellama-34b", "--epochs", "2", "--no-gradient-checkpointing",
                          "--warmup-steps", "7"], capture_output=True, text=True, check=True).stdout
    values = yaml.safe_load(out)
    assert (values["epochs"], values["gradient_checkpointing"], values["warmup_steps"], values["lr"]) == \
        (2, False, 7, 2e-5)
    help_text = subprocess.run([sys.executable, "-m", "multiplt", "train", "--help"],
                               capture_output=True, text=True, check=True).stdout
    for f in dataclasses.fields(TrainConfig):
        assert "--" + f.name.replace("_", "-") in help_text, f.name


def test_cli_bad_experiment_exits_2_with_one_clear_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "multiplt", "train", "--dataset", "x.jsonl",
                             "--base", "m", "--lang", "rkt", "--experiment", "Bad-Name", "--out",
                             str(tmp_path / "o")], capture_output=True, text=True)
    assert result.returncode == 2
    assert "experiment" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()


def test_a_model_that_cannot_load_is_an_input_error_unless_the_hub_is_unreachable():
    """A missing folder or config.json: exit 2 (fix the input). A network failure behind
    transformers' OSError: exit 3 (the stage runtime retries it later)."""
    from multiplt.errors import PlatformError
    from multiplt.training.loop import _loading

    with pytest.raises(MultipltError, match="cannot load the base model '/nowhere': no config.json") as info:
        with _loading("base model", "/nowhere"):
            raise OSError("no config.json\nmore lines")
    assert not isinstance(info.value, PlatformError)

    def unreachable():
        try:
            raise ConnectionError("connection refused")
        except ConnectionError as exc:
            raise OSError("We couldn't connect to 'https://huggingface.co'") from exc

    with pytest.raises(PlatformError, match="cannot load the base model 'org/m' now"):
        with _loading("base model", "org/m"):
            unreachable()
