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
    ("codellama-34b", 5, 0.0025), ("codellama-34b-jl-r", 4, 0.0), ("codellama-70b", 5, 0.0025)])
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


@pytest.mark.parametrize("bad", ["Multi-PLT", "a b", "x-y", "", "multiplt\n"])
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
                          ("lr: .nan\n", "bad lr=nan: must be finite and > 0"),
                          ("adam_beta1: 1.5\n", "bad adam_beta1=1.5: must be in [0, 1)"),
                          ("adam_eps: 0\n", "bad adam_eps=0.0: must be finite and > 0")):
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



def test_local_paths_are_made_absolute_and_hub_names_and_uris_kept(tmp_path, monkeypatch):
    """A relative --out/--dataset/--base/--tokenizer is stored absolute, so the run config and the
    manifest rows name places that hold from any folder; Hub names and storage URIs are kept."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base").mkdir()
    (tmp_path / "tok").mkdir()
    c = resolve("tiny", dict(REQUIRED, out="runs/o/", dataset="data/racket.jsonl", base="base",
                             tokenizer="./tok"))
    assert (c.out, c.dataset, c.base, c.tokenizer) == (
        f"{tmp_path}/runs/o", f"{tmp_path}/data/racket.jsonl", f"{tmp_path}/base", f"{tmp_path}/tok")
    c = resolve("tiny", dict(REQUIRED, out="s3://bucket/o", dataset="nuprl/MultiPL-T",
                             base="bigcode/starcoderbase-1b", tokenizer="file:///x/tok"))
    assert (c.out, c.dataset, c.base, c.tokenizer) == (
        "s3://bucket/o", "nuprl/MultiPL-T", "bigcode/starcoderbase-1b", "file:///x/tok")


@pytest.mark.parametrize("flag,value,meant", [("out", "s3//bucket/o", "s3://bucket/o"),
                                              ("out", "s3:/bucket/o", "s3://bucket/o"),
                                              ("dataset", "file:/tmp/d.jsonl", "file:///tmp/d.jsonl"),
                                              ("base", "s3:/bucket/m", "s3://bucket/m")])
def test_a_mistyped_uri_is_refused_not_taken_as_a_local_folder(flag, value, meant, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MultipltError, match=re.escape(f"--{flag} {value!r} reads as a mistyped URI "
                                                      f"(did you mean {meant!r}?)")):
        resolve("tiny", dict(REQUIRED, **{flag: value}))
    result = subprocess.run([sys.executable, "-m", "multiplt", "train", "--recipe", "tiny",
                             *[a for k, v in dict(REQUIRED, **{flag: value}).items() for a in (f"--{k}", v)]],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2 and "mistyped URI" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written below the current folder


def test_resume_compares_places_not_spellings(tmp_path, monkeypatch):
    """`out` is where the saved config was read (never a difference); dataset, base and tokenizer
    spelled relative, with a trailing slash or as file:// name the same place."""
    from multiplt.training.config import resume_differences

    monkeypatch.chdir(tmp_path)
    (tmp_path / "base").mkdir()
    saved = resolve("tiny", dict(REQUIRED, out=f"{tmp_path}/out1", dataset=f"{tmp_path}/d.jsonl",
                                 base=f"{tmp_path}/base")).as_dict()
    for out, dataset, base in ((f"{tmp_path}/out1/", "d.jsonl", "base/"),
                               (f"file://{tmp_path}/out1", f"file://{tmp_path}/d.jsonl", f"file://{tmp_path}/base"),
                               ("out1", "./d.jsonl", f"{tmp_path}/base/")):
        now = resolve("tiny", dict(REQUIRED, out=out, dataset=dataset, base=base))
        assert resume_differences(saved, now) == [], (out, dataset, base)
    # Raw relative values in a config saved before paths were made absolute still match from its folder.
    assert resume_differences(dict(saved, dataset="d.jsonl", base="base"), now) == []
    other = resolve("tiny", dict(REQUIRED, out="out1", dataset="e.jsonl", base="m2", lr=0.5))
    assert resume_differences(saved, other) == ["base", "dataset", "lr"]


def test_seed_must_be_what_torch_takes():
    for good in (-1, -2 ** 63, 2 ** 63, 2 ** 64 - 1):  # negative seeds always worked: keep them
        assert resolve("tiny", dict(REQUIRED, seed=good)).seed == good
    for bad in (-2 ** 63 - 1, 2 ** 64, 2 ** 70):
        with pytest.raises(MultipltError, match=re.escape(f"bad seed={bad}: must be in [-2**63, 2**64)")):
            resolve("tiny", dict(REQUIRED, seed=bad))


def test_print_config_prints_what_a_run_would_use_and_refuses_what_a_run_refuses(tmp_path):
    run = lambda *args: subprocess.run([sys.executable, "-m", "multiplt", "train", "--print-config",  # noqa: E731
                                        "--recipe", "tiny", *args], capture_output=True, text=True, cwd=tmp_path)
    printed = run("--lang", "racket", "--out", "rel")
    assert printed.returncode == 0, printed.stderr
    values = yaml.safe_load(printed.stdout)
    assert (values["lang"], values["split"], values["out"], values["recipe"]) == ("rkt", "racket",
                                                                                  f"{tmp_path}/rel", "tiny")
    for args, message in ((["--epochs", "0"], "bad epochs=0"), (["--lang", "cobol"], "unknown language"),
                          (["--experiment", "Bad-Name"], "bad --experiment"),
                          # a flag's bad value is named with its setting, not as a "bad recipe"
                          (["--lr", "-1"], "error: bad lr=-1.0: must be finite and > 0"),
                          (["--lr", "nan"], "error: bad lr=nan: must be finite and > 0"),
                          (["--max-grad-norm", "-1"], "error: bad max_grad_norm=-1.0: must be finite and > 0"),
                          (["--warmup-steps", "-1"], "error: bad warmup_steps=-1: must be >= 0"),
                          (["--weight-decay", "inf"], "error: bad weight_decay=inf: must be finite and >= 0"),
                          (["--adam-beta2", "nan"], "error: bad adam_beta2=nan: must be in [0, 1)")):
        result = run(*args)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
        assert result.stdout == ""


def test_a_corrupt_weights_file_is_an_input_error():
    """A truncated model.safetensors (SafetensorError) or pickle file: exit 2 naming the model, not a
    traceback."""
    import pickle

    from safetensors import SafetensorError

    from multiplt.errors import PlatformError
    from multiplt.training.loop import _loading

    for exc in (SafetensorError("Error while deserializing header: invalid header length"),
                pickle.UnpicklingError("invalid load key"), EOFError("Ran out of input")):
        with pytest.raises(MultipltError, match=f"cannot load the base model '/m': {exc}") as info:
            with _loading("base model", "/m"):
                raise exc
        assert not isinstance(info.value, PlatformError)


def test_token_ids_beyond_the_embeddings_are_refused_naming_both():
    import types

    import torch

    from multiplt.training.loop import check_vocabulary

    model = types.SimpleNamespace(get_input_embeddings=lambda: torch.nn.Embedding(100, 4))
    fits = types.SimpleNamespace(train=torch.tensor([[1, 99]]), eval=torch.empty((0, 2), dtype=torch.long))
    check_vocabulary(fits, model, "tok", "base")
    too_big = types.SimpleNamespace(train=torch.tensor([[1, 2]]), eval=torch.tensor([[100, 3]]))
    with pytest.raises(MultipltError, match=re.escape("the tokenizer 'tok' gives token id 100, but the base "
                                                      "model 'base' has only 100 input embeddings")):
        check_vocabulary(too_big, model, "tok", "base")
