"""`publish checkpoints` publishes no place of the deployment (test Hub): the model card's
Recipe and each tag's `_multiplt_train.yaml` name a local path or storage URI by its public name
NAME~HASH, as `publish results` does (Hub ids as they are), the checkpoint still loads by its tag,
and a checkpoint that an earlier version published with its own `_multiplt_train.yaml` (the
deployment's paths in it) is a rerun that uploads nothing, not a tag conflict."""

from __future__ import annotations

import json

import pytest
import yaml

from multiplt import cli, storage
from multiplt.hub.results import place_name
from tests.integration.test_publish_checkpoints import make_training_output

TAGS = ["lua-multiplt-epoch1", "lua-multiplt-epoch2"]
WRITES = ("POST", "PUT", "DELETE")


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setenv("MULTIPLT_HUB_BACKOFF", "0.01")


@pytest.fixture
def train_out(tmp_path, tiny_model) -> str:
    """A training output whose run configs name the deployment's places: the base model's folder,
    a dataset folder as a file:// URI and the output itself (`out`), as `multiplt train` records
    them; the recipe and the tokenizer by name."""
    out = make_training_output(tmp_path / "deploy", tiny_model)
    dataset = f"file://{tmp_path}/deploy/translate/lua"
    for path in [f"{out}/_multiplt_train.yaml"] + [f"{out}/checkpoints/{t}/_multiplt_train.yaml" for t in TAGS]:
        config = yaml.safe_load(storage.read_text(path))
        config["config"].update(dataset=dataset, out=out, tokenizer="org/tokenizer")
        storage.write_text(path, yaml.safe_dump(config, sort_keys=False))
    return out


def writes(hub) -> int:
    return len([r for r in hub.requests if r[0] in WRITES and "validate" not in r[1]])


def hub_text(repo: str, path: str, revision: str = "main") -> str:
    from huggingface_hub import hf_hub_download

    return open(hf_hub_download(repo, path, revision=revision), encoding="utf-8").read()


def test_card_and_run_config_name_places_by_their_public_names(test_hub, train_out, tiny_model, tmp_path,
                                                               capsys):
    from transformers import AutoModelForCausalLM

    assert cli.main(["publish", "checkpoints", "--from", train_out, "--repo", "ns/tuned"]) == 0
    assert json.loads(capsys.readouterr().out)["tags"] == TAGS
    dataset = f"file://{tmp_path}/deploy/translate/lua"
    card = hub_text("ns/tuned", "README.md")
    assert f"| base | {place_name(tiny_model)} |" in card
    assert f"| dataset | {place_name(dataset)} |" in card
    assert "| recipe | starcoderbase-1b |" in card
    for tag in TAGS:
        text = hub_text("ns/tuned", "_multiplt_train.yaml", tag)
        config = yaml.safe_load(text)["config"]
        assert (config["base"], config["dataset"], config["out"]) == (
            place_name(tiny_model), place_name(dataset), place_name(train_out))
        assert config["tokenizer"] == "org/tokenizer" and config["recipe"] == "starcoderbase-1b"
        assert yaml.safe_load(text)["tag"] == tag
        for shown in (card, text):
            assert str(tmp_path) not in shown and "file://" not in shown and tiny_model not in shown
    # the local checkpoint keeps its paths (they are how the platform finds its base and data)
    local = yaml.safe_load(storage.read_text(f"{train_out}/checkpoints/{TAGS[0]}/_multiplt_train.yaml"))
    assert local["config"]["base"] == tiny_model
    # the tag still loads alone
    model = AutoModelForCausalLM.from_pretrained("ns/tuned", revision=TAGS[1])
    assert model.config.model_type == "gpt_bigcode"
    # a rerun sends nothing
    before = writes(test_hub)
    assert cli.main(["publish", "checkpoints", "--from", train_out, "--repo", "ns/tuned"]) == 0
    rerun = json.loads(capsys.readouterr().out)
    assert rerun["skipped"] == TAGS and rerun["commits"] == 0 and writes(test_hub) == before


def test_a_checkpoint_published_with_its_own_run_config_is_a_rerun_that_sends_nothing(
        test_hub, train_out, tiny_model, monkeypatch, capsys):
    """Tags an earlier version published (the checkpoint's own `_multiplt_train.yaml`, its paths
    in it, and the card's Recipe with them): the rerun skips them, uploads no checkpoint file and
    moves no tag; only the card is brought to its new form, in one commit."""
    from multiplt.hub import checkpoints

    argv = ["publish", "checkpoints", "--from", train_out, "--repo", "ns/old"]
    with monkeypatch.context() as old:
        old.setattr(checkpoints.CheckpointBundle, "publish_run_config", lambda self, row: None)
        old.setattr("multiplt.hub.results.public_places", lambda value: value)
        assert cli.main(argv) == 0
    capsys.readouterr()
    repo = test_hub.repos[("model", "ns/old")]
    tags = dict(repo.tags)
    assert yaml.safe_load(hub_text("ns/old", "_multiplt_train.yaml", TAGS[0]))["config"]["out"] == train_out
    assert f"| base | {tiny_model} |" in hub_text("ns/old", "README.md")
    assert cli.main(argv) == 0
    rerun = json.loads(capsys.readouterr().out)
    assert rerun["skipped"] == TAGS and rerun["tags"] == [] and rerun["moved"] == []
    assert repo.tags == tags
    head = repo.commits[repo.branches["main"]]
    assert head.title == "Update model card" and head.parent == tags[TAGS[1]]
    card = hub_text("ns/old", "README.md")
    assert f"| base | {place_name(tiny_model)} |" in card and tiny_model not in card
    before = writes(test_hub)
    assert cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out)["commits"] == 0 and writes(test_hub) == before
    # and with --force too: the tags hold the same checkpoints, nothing is moved
    assert cli.main([*argv, "--force"]) == 0
    assert json.loads(capsys.readouterr().out)["moved"] == [] and repo.tags == tags


def test_another_base_at_a_tag_published_with_its_path_is_still_named(test_hub, tmp_path, tiny_model,
                                                                      monkeypatch, capsys):
    """The conflict error compares base models across both forms of the run config: a tag an
    earlier version published (the base's path) and this checkpoint's other base."""
    from multiplt.hub import checkpoints

    first = make_training_output(tmp_path, tiny_model, name="first")
    with monkeypatch.context() as old:
        old.setattr(checkpoints.CheckpointBundle, "publish_run_config", lambda self, row: None)
        assert cli.main(["publish", "checkpoints", "--from", first, "--repo", "ns/bases"]) == 0
    # the same base, another spelling of the checkpoint's files: a plain conflict
    second = make_training_output(tmp_path, tiny_model, name="second")
    storage.write_text(f"{storage.local_path(second)}/checkpoints/{TAGS[0]}/generation_config.json",
                       '{"max_new_tokens": 7}')
    capsys.readouterr()
    assert cli.main(["publish", "checkpoints", "--from", second, "--repo", "ns/bases", "--tags", TAGS[0]]) == 2
    err = capsys.readouterr().err
    assert f"tag {TAGS[0]} already exists on ns/bases with other files" in err and "another base" not in err
    third = make_training_output(tmp_path, tiny_model, name="third", base="org/other-base")
    assert cli.main(["publish", "checkpoints", "--from", third, "--repo", "ns/bases", "--tags", TAGS[0]]) == 2
    err = capsys.readouterr().err
    assert (f"with the checkpoint of another base model ({tiny_model}; this one's is org/other-base)"
            in err), err
