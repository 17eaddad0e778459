"""`multiplt publish checkpoints` against the test Hub: one commit and one tag per epoch, the
card, skips and conflicts on rerun, and checkpoints that load by tag alone and generate."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import yaml

from multiplt import cli, storage

LANG, EXPERIMENT = "lua", "multiplt"


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setenv("MULTIPLT_HUB_BACKOFF", "0.01")


def make_training_output(root, tiny_model: str, epochs: int = 2, lang: str = LANG, base: str | None = None,
                         name: str = "train-out") -> str:
    """A training output in `multiplt train`'s layout: per epoch a bf16 checkpoint of the tiny
    model (weights nudged per epoch), config, tokenizer and run config; the manifest last.
    `base`: the base model its configs name (default: the tiny model it was made of)."""
    import torch
    from safetensors.torch import load_file, save_file

    out = str(root / name)
    base = base or tiny_model
    weights = load_file(os.path.join(tiny_model, "model.safetensors"))
    config = {"config": {"base": base, "dataset": "nuprl/MultiPL-T", "lang": lang,
                         "experiment": EXPERIMENT, "lr": 3e-5, "epochs": epochs, "seq_len": 2048,
                         "batch_size": 8, "recipe": "starcoderbase-1b"}}
    storage.write_text(f"{out}/_multiplt_train.yaml", yaml.safe_dump(config))
    rows = []
    for epoch in range(1, epochs + 1):
        tag = f"{lang}-{EXPERIMENT}-epoch{epoch}"
        ckpt = os.path.join(out, "checkpoints", tag)
        os.makedirs(ckpt)
        for name in os.listdir(tiny_model):
            if name != "model.safetensors" and os.path.isfile(os.path.join(tiny_model, name)):
                shutil.copy(os.path.join(tiny_model, name), ckpt)
        with open(os.path.join(ckpt, "config.json")) as f:  # as training writes it
            model_config = json.load(f)
        with open(os.path.join(ckpt, "config.json"), "w") as f:
            json.dump({**model_config, "dtype": "bfloat16", "use_cache": True}, f)
        bf16 = {k: (v * (1 + 1e-3 * epoch)).to(torch.bfloat16).contiguous() for k, v in weights.items()}
        save_file(bf16, os.path.join(ckpt, "model.safetensors"), metadata={"format": "pt"})
        with open(os.path.join(ckpt, "_multiplt_train.yaml"), "w") as f:
            yaml.safe_dump({**config, "epoch": epoch, "tag": tag}, f)
        rows.append({"uri": f"file://{ckpt}", "epoch": epoch, "step": 10 * epoch, "tag": tag,
                     "eval_loss": 3.0 - 0.5 * epoch, "lang": lang, "experiment": EXPERIMENT,
                     "base": base, "tokenizer": tiny_model, "run_start_step": 0,
                     "state_uri": f"file://{out}/state/{tag}"})
    storage.write_jsonl(f"{out}/manifest.jsonl", rows)
    return f"file://{out}"


@pytest.fixture
def train_out(tmp_path, tiny_model) -> str:
    return make_training_output(tmp_path, tiny_model)


def record_pass1(store: str, out: str, estimates: dict[int, float], lang: str = LANG) -> None:
    """Write the results store `store` (replacing it): pass@1 of `out`'s epochs."""
    import polars as pl

    from multiplt.results.schema import polars_schema

    rows = [{"run_id": f"r{e}", "model": out, "revision": f"{lang}-{EXPERIMENT}-epoch{e}", "lang": lang,
             "epoch": e, "k": 1, "estimate": v, "num_problems": 4} for e, v in estimates.items()]
    storage.write_parquet(store, pl.DataFrame(rows).with_columns(
        [pl.lit(None, d).alias(c) for c, d in polars_schema().items() if c not in rows[0]]))


def test_each_epoch_is_one_tagged_commit_with_card(test_hub, train_out, tmp_path, capsys):
    from huggingface_hub import HfApi, hf_hub_download

    store = str(tmp_path / "results.parquet")
    record_pass1(store, train_out, {1: 0.25, 2: 0.5})
    assert cli.main(["publish", "checkpoints", "--from", train_out, "--repo", "ns/MultiPL-T-tiny",
                     "--results-store", store]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["tags"] == ["lua-multiplt-epoch1", "lua-multiplt-epoch2"] and summary["commits"] == 2
    api = HfApi()
    refs = api.list_repo_refs("ns/MultiPL-T-tiny")
    tags = {t.name: t.target_commit for t in refs.tags}
    assert sorted(tags) == ["lua-multiplt-epoch1", "lua-multiplt-epoch2"]
    commits = api.list_repo_commits("ns/MultiPL-T-tiny")
    assert [c.title for c in commits][:2] == ["lua-multiplt-epoch2", "lua-multiplt-epoch1"]
    assert tags["lua-multiplt-epoch2"] == commits[0].commit_id
    files = set(api.list_repo_files("ns/MultiPL-T-tiny", revision="lua-multiplt-epoch1"))
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md",
            "_multiplt_train.yaml"} <= files
    card = open(hf_hub_download("ns/MultiPL-T-tiny", "README.md")).read()
    assert "| lua-multiplt-epoch2 | lua | 2 | 20 | 2.0000 | 0.5000 |" in card
    assert "revision=\"lua-multiplt-epoch2\"" in card and "lr" in card and "nuprl/MultiPL-T" in card
    # the weights at each tag are that epoch's
    for epoch in (1, 2):
        tag = f"lua-multiplt-epoch{epoch}"
        remote = open(hf_hub_download("ns/MultiPL-T-tiny", "model.safetensors", revision=tag), "rb").read()
        local = open(storage.local_path(f"{train_out}/checkpoints/{tag}/model.safetensors"), "rb").read()
        assert remote == local


def test_rerun_skips_same_tags_conflict_needs_force(test_hub, train_out, tmp_path, capsys):
    argv = ["publish", "checkpoints", "--from", train_out, "--repo", "ns/tiny"]
    assert cli.main(argv) == 0
    capsys.readouterr()
    writes = len([r for r in test_hub.requests if r[0] in ("POST", "DELETE") and "validate" not in r[1]])
    assert cli.main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["skipped"] == ["lua-multiplt-epoch1", "lua-multiplt-epoch2"] and again["commits"] == 0
    assert len([r for r in test_hub.requests if r[0] in ("POST", "DELETE") and "validate" not in r[1]]) == writes

    # epoch 2 retrained with other weights: its tag exists with other content
    ckpt = storage.local_path(f"{train_out}/checkpoints/lua-multiplt-epoch2")
    with open(os.path.join(ckpt, "generation_config.json"), "w") as f:
        f.write('{"max_new_tokens": 7}')
    before = test_hub.repos[("model", "ns/tiny")].tags.copy()
    assert cli.main(argv) == 2
    assert "already exists" in capsys.readouterr().err
    assert test_hub.repos[("model", "ns/tiny")].tags == before
    assert cli.main([*argv, "--force"]) == 0
    moved = json.loads(capsys.readouterr().out)
    assert moved["moved"] == ["lua-multiplt-epoch2"]
    tags = test_hub.repos[("model", "ns/tiny")].tags
    assert tags["lua-multiplt-epoch2"] != before["lua-multiplt-epoch2"]
    assert tags["lua-multiplt-epoch1"] == before["lua-multiplt-epoch1"]


def test_rerun_after_a_failed_tag_tags_the_commit(test_hub, train_out, capsys):
    test_hub.fail("POST", r"/tag/", 403)  # the first tag creation is refused
    argv = ["publish", "checkpoints", "--from", train_out, "--repo", "ns/half", "--tags", "lua-multiplt-epoch1"]
    assert cli.main(argv) == 2
    repo = test_hub.repos[("model", "ns/half")]
    assert not repo.tags and len(repo.commits) == 2
    assert cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["commits"] == 0  # no second commit
    assert repo.tags["lua-multiplt-epoch1"] == repo.branches["main"]


def test_tags_best_picks_the_best_pass_at_1(test_hub, train_out, tmp_path, capsys):
    store = str(tmp_path / "results.parquet")
    record_pass1(store, train_out, {1: 0.75, 2: 0.5})
    assert cli.main(["publish", "checkpoints", "--from", train_out, "--repo", "ns/best", "--tags", "best",
                     "--results-store", store]) == 0
    assert json.loads(capsys.readouterr().out)["tags"] == ["lua-multiplt-epoch1"]
    assert cli.main(["publish", "checkpoints", "--from", train_out, "--repo", "ns/best",
                     "--tags", "lua-multiplt-epoch9"]) == 2
    assert "lua-multiplt-epoch9 not in the manifests" in capsys.readouterr().err
    assert cli.main(["publish", "checkpoints", "--from", train_out, "--repo", "ns/best",
                     "--tags", "lua-multiplt-epoch1,lua-multiplt-epoch9"]) == 2


@pytest.mark.slow
def test_published_checkpoint_loads_by_tag_alone_and_generates(test_hub, train_out):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert cli.main(["publish", "checkpoints", "--from", train_out, "--repo", "ns/loadme"]) == 0
    model = AutoModelForCausalLM.from_pretrained("ns/loadme", revision="lua-multiplt-epoch2")
    tokenizer = AutoTokenizer.from_pretrained("ns/loadme", revision="lua-multiplt-epoch2")
    assert model.dtype == torch.bfloat16
    from huggingface_hub import hf_hub_download
    from safetensors import safe_open

    with safe_open(hf_hub_download("ns/loadme", "model.safetensors", revision="lua-multiplt-epoch2"),
                   "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}
    local = storage.local_path(f"{train_out}/checkpoints/lua-multiplt-epoch2")
    reference = AutoModelForCausalLM.from_pretrained(local)
    for (name, a), (_, b) in zip(model.state_dict().items(), reference.state_dict().items()):
        assert torch.equal(a, b), name
    ids = tokenizer("local function add(x, y)\n", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    assert out.shape[1] > ids["input_ids"].shape[1]
    assert isinstance(tokenizer.decode(out[0]), str)


def test_fp32_weights_are_refused_before_anything_is_uploaded(test_hub, tmp_path, tiny_model, capsys):
    out = make_training_output(tmp_path, tiny_model, epochs=1)
    ckpt = storage.local_path(f"{out}/checkpoints/lua-multiplt-epoch1")
    shutil.copy(os.path.join(tiny_model, "model.safetensors"), ckpt)  # the fp32 original
    assert cli.main(["publish", "checkpoints", "--from", out, "--repo", "ns/fp32"]) == 2
    assert "bf16" in capsys.readouterr().err
    assert not test_hub.repos


def test_a_checkpoint_whose_tokenizer_does_not_load_is_refused_before_any_upload(test_hub, tmp_path,
                                                                                 tiny_model, capsys):
    """tokenizer_config.json alone is not a tokenizer: the tag would not load. The error names
    the checkpoint and the files it has, and nothing is sent."""
    out = make_training_output(tmp_path, tiny_model, epochs=2)
    ckpt = storage.local_path(f"{out}/checkpoints/lua-multiplt-epoch2")
    os.remove(os.path.join(ckpt, "tokenizer.json"))
    assert cli.main(["publish", "checkpoints", "--from", out, "--repo", "ns/notok"]) == 2
    err = capsys.readouterr().err
    assert (f"checkpoint lua-multiplt-epoch2 at file://{ckpt}: its tokenizer does not load from the "
            f"files it has (tokenizer_config.json): ") in err
    assert "nothing was uploaded" in err and err.count("error:") == 1
    assert not test_hub.repos


def test_a_checkpoint_without_tokenizer_files_gets_the_training_tokenizer_that_loads_by_tag(
        test_hub, tmp_path, tiny_model):
    """The manifest row names the checkpoint itself as its tokenizer (as `multiplt train` writes
    it); with its tokenizer files gone the base model's (the training tokenizer) is published, and
    AutoTokenizer.from_pretrained(repo, revision=tag) loads it."""
    from huggingface_hub import HfApi
    from transformers import AutoTokenizer

    out = make_training_output(tmp_path, tiny_model, epochs=1)
    ckpt = storage.local_path(f"{out}/checkpoints/lua-multiplt-epoch1")
    rows = storage.read_jsonl(f"{out}/manifest.jsonl")
    storage.write_jsonl(f"{out}/manifest.jsonl", [{**r, "tokenizer": r["uri"]} for r in rows])
    for name in ("tokenizer.json", "tokenizer_config.json"):
        os.remove(os.path.join(ckpt, name))
    assert cli.main(["publish", "checkpoints", "--from", out, "--repo", "ns/basetok"]) == 0
    files = set(HfApi().list_repo_files("ns/basetok", revision="lua-multiplt-epoch1"))
    assert {"tokenizer.json", "tokenizer_config.json"} <= files
    published = AutoTokenizer.from_pretrained("ns/basetok", revision="lua-multiplt-epoch1")
    base = AutoTokenizer.from_pretrained(tiny_model)
    text = "local function add(x, y)\n  return x + y\nend\n"
    assert published(text)["input_ids"] == base(text)["input_ids"]


def test_a_checkpoint_without_its_training_config_is_refused_without_generation_config_warned(
        test_hub, tmp_path, tiny_model, capsys):
    """`_multiplt_train.yaml` says what made the tag: a checkpoint without it (an incomplete copy)
    is refused before anything is sent. Without generation_config.json the tag still loads and
    generates (transformers takes the defaults from config.json): published, with a warning."""
    from huggingface_hub import HfApi

    out = make_training_output(tmp_path, tiny_model, epochs=2)
    ckpt1 = storage.local_path(f"{out}/checkpoints/lua-multiplt-epoch1")
    ckpt2 = storage.local_path(f"{out}/checkpoints/lua-multiplt-epoch2")
    os.remove(os.path.join(ckpt2, "_multiplt_train.yaml"))
    argv = ["publish", "checkpoints", "--from", out, "--repo", "ns/parts"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert (f"checkpoint lua-multiplt-epoch2 at file://{ckpt2} lacks _multiplt_train.yaml (the "
            f"training config") in err and "nothing was uploaded" in err
    assert not test_hub.repos
    shutil.copy(os.path.join(ckpt1, "_multiplt_train.yaml"), ckpt2)
    os.remove(os.path.join(ckpt1, "generation_config.json"))
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert (f"WARNING multiplt.hub: checkpoint lua-multiplt-epoch1 at file://{ckpt1} has no "
            f"generation_config.json: published without it") in err
    api = HfApi()
    assert "generation_config.json" not in api.list_repo_files("ns/parts", revision="lua-multiplt-epoch1")
    assert "generation_config.json" in api.list_repo_files("ns/parts", revision="lua-multiplt-epoch2")


def test_one_output_given_twice_is_published_once(test_hub, train_out, capsys):
    """As `results record` takes a run folder given twice: one folder, however spelled, is one
    output (two different folders with the same tags are still refused, test_publish_bad_input)."""
    local = storage.local_path(train_out)
    argv = ["publish", "checkpoints", "--from", train_out, "--from", local + "/", "--repo", "ns/twice"]
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["tags"] == ["lua-multiplt-epoch1", "lua-multiplt-epoch2"]
    assert f"WARNING multiplt.hub: --from {train_out}: given twice (as {train_out}, {local}); published once" in err


def test_a_tag_made_meanwhile_by_another_publication_of_the_same_files_is_skipped(
        test_hub, train_out, monkeypatch, capsys):
    """Two publications of one output at once (a cleared task's earlier try still running):
    the one that lost the race to create a tag got the Hub's 409 and exited 2, a bad-input
    error that is not retried. Now a tag made meanwhile with the same files is skipped, as a
    rerun skips it."""
    from multiplt.hub import client as hub_client

    argv = ["publish", "checkpoints", "--from", train_out, "--repo", "ns/race"]
    real = hub_client.HubClient.create_tag
    raced = []

    def create_tag(self, tag, oid):
        if not raced:  # the other publication runs to its end between our commit and our tag
            raced.append(tag)
            assert cli.main(argv) == 0
        return real(self, tag, oid)

    monkeypatch.setattr(hub_client.HubClient, "create_tag", create_tag)
    assert cli.main(argv) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["skipped"] == ["lua-multiplt-epoch1", "lua-multiplt-epoch2"] and out["tags"] == []
    assert sorted(test_hub.repos[("model", "ns/race")].tags) == ["lua-multiplt-epoch1", "lua-multiplt-epoch2"]
