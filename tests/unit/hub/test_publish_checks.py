"""What `multiplt publish` refuses before it reads, loads or sends anything (no Hub needed): manifest
rows whose tag misnames them, repo ids huggingface_hub refuses, a missing token; and the model
card read back renders the same card (the union of a publication and the card on main)."""

from __future__ import annotations

import json

import pytest

from multiplt import cli
from multiplt.errors import MultipltError
from multiplt.hub import auth, cards, checkpoints, publish
from multiplt.hub.repo_id import parse_repo_id

TAG = "rkt-multiplt-epoch1"


def training_output(root, **row) -> str:
    root.mkdir(parents=True)
    base = {"uri": str(root / "epoch1"), "epoch": 1, "step": 10, "tag": TAG, "eval_loss": 1.0,
            "lang": "rkt", "experiment": "multiplt", "base": "org/tiny", "tokenizer": "org/tiny"}
    (root / "manifest.jsonl").write_text(json.dumps({**base, **row}) + "\n")
    return str(root)


@pytest.fixture
def no_upload(monkeypatch):
    """Fails the test when a checkpoint is read or the Hub contacted."""
    monkeypatch.setenv("HF_TOKEN", "hf_unit_test_token")
    monkeypatch.setattr(checkpoints, "checkpoint_files", lambda *a, **k: pytest.fail("a checkpoint was read"))
    monkeypatch.setattr(publish, "client_for", lambda *a, **k: pytest.fail("the Hub was contacted"))


@pytest.mark.parametrize("row,problem", [
    ({"experiment": "my exp", "tag": "rkt-my exp-epoch1"},
     "experiment 'my exp': an experiment label is one or more of a-z, 0-9 and _"),
    ({"tag": "rkt-multiplt-epoch2"}, "the tag is not 'rkt-multiplt-epoch1' (LANG-EXPERIMENT-epochN"),
    ({"tag": "rkt-other-epoch1"}, "the tag is not 'rkt-multiplt-epoch1'"),
    ({"lang": "racket", "tag": "racket-multiplt-epoch1"}, "lang 'racket' is not a language code"),
    ({"lang": "xx", "tag": "xx-multiplt-epoch1"}, "lang 'xx' is not a language code"),
    ({"epoch": 0, "tag": "rkt-multiplt-epoch1"}, "the tag is not 'rkt-multiplt-epoch0'")])
def test_a_manifest_row_whose_tag_misnames_it_is_refused_before_any_upload(tmp_path, capsys, no_upload,
                                                                           row, problem):
    out = training_output(tmp_path / "train", **row)
    assert cli.main(["publish", "checkpoints", "--from", out, "--repo", "me/m"]) == 2
    err = capsys.readouterr().err
    assert f"--from {out}: manifest row of {row.get('tag', TAG)!r}: {problem}" in err
    assert err.count("\n") == 1


def test_a_manifest_as_train_writes_it_passes_the_check(tmp_path):
    out = training_output(tmp_path / "train")
    assert checkpoints.load_output(out)["rows"][0]["tag"] == TAG


@pytest.mark.parametrize("bad", ["ns/x.git", "x" * 97 + "/b"])
def test_repo_ids_huggingface_hub_refuses_are_refused_when_parsed(bad):
    with pytest.raises(MultipltError, match="OWNER/NAME"):
        parse_repo_id(bad)


def test_a_git_repo_id_is_refused_before_a_dry_run_reads_anything(tmp_path, capsys):
    target = tmp_path / "dry"
    assert cli.main(["publish", "dataset", "--from", str(tmp_path / "nosuch"), "--repo", "ns/x.git",
                     "--dry-run", str(target)]) == 2
    err = capsys.readouterr().err
    assert "bad --repo 'ns/x.git': expected OWNER/NAME" in err and "not ending in '.git'" in err
    assert not target.exists()


@pytest.mark.parametrize("argv", [
    ["dataset", "--from", "NOSUCH"], ["checkpoints", "--from", "NOSUCH"], ["results", "--store", "NOSUCH"]])
def test_a_missing_token_is_refused_before_anything_is_read(tmp_path, capsys, monkeypatch, argv):
    """The token is asked for first: not after the manifests are read, the tokenizers loaded
    or a base model's tokenizer downloaded (here: --from names nothing, and that is not what
    the error says)."""
    for name in auth.TOKEN_ENV:
        monkeypatch.delenv(name, raising=False)
    argv = [a.replace("NOSUCH", str(tmp_path / "nosuch")) for a in argv]
    assert cli.main(["publish", *argv, "--repo", "me/x"]) == 2
    err = capsys.readouterr().err
    assert "no Hugging Face token: set HF_TOKEN" in err and err.count("\n") == 1


def output(lang: str, epochs: int, base: str) -> dict:
    return {"config": {"lang": lang, "experiment": "multiplt", "base": base, "lr": 3e-5, "epochs": epochs},
            "rows": [{"tag": f"{lang}-multiplt-epoch{e}", "lang": lang, "epoch": e, "step": 10 * e,
                      "eval_loss": 3.0 - 0.5 * e} for e in range(1, epochs + 1)]}


def test_a_card_read_back_renders_the_same_card():
    """The card on main's rows and recipes, as union_outputs keeps them, give back that card:
    a publication that adds nothing commits nothing."""
    outs = [output("lua", 2, "org/a"), output("rkt", 3, "org/a")]
    passk = {"lua-multiplt-epoch1": 0.25, "rkt-multiplt-epoch3": 0.5}
    card = cards.model_card("me/m", outs, passk, "mit", "humaneval", (161,))
    kept = cards.card_pass_at_1(card)
    assert kept.recipes[("rkt", "multiplt")] == {"base": "org/a", "epochs": "3", "lr": "3e-05"}
    existing = {r["tag"]: "oid" for o in outs for r in o["rows"]}
    union = checkpoints.union_outputs([], kept, existing)
    assert cards.model_card("me/m", union, kept.scores, "mit", note=kept.note) == card
    # this publication's Racket output joins the kept Lua rows, in the same order
    assert checkpoints.union_outputs([outs[1]], kept, existing) == [union[0], outs[1]]
    assert cards.note_benchmark(kept.note) == "humaneval"
    # a tag gone from the repo is left out
    del existing["lua-multiplt-epoch1"]
    assert [r["tag"] for r in checkpoints.union_outputs([], kept, existing)[0]["rows"]] == ["lua-multiplt-epoch2"]


def test_the_library_refuses_a_missing_token_after_its_input_checks_before_reading(tmp_path,
                                                                                   monkeypatch):
    """publish_checkpoints / publish_dataset / publish_results themselves ask for the token once
    their arguments are checked, before any manifest, data folder or store is read (the CLI
    used to do it, repeating the library's checks; a caller of the library read everything
    first and was refused only at the Hub client)."""
    from multiplt.hub.dataset import publish_dataset
    from multiplt.hub.results import publish_results

    for name in auth.TOKEN_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(checkpoints, "load_output", lambda *a, **k: pytest.fail("a manifest was read"))
    out = training_output(tmp_path / "train")
    with pytest.raises(MultipltError, match="^no Hugging Face token: set HF_TOKEN"):
        checkpoints.publish_checkpoints([out], "me/m")
    # its own checks come first: a --tags naming nothing, a --from that is a file
    with pytest.raises(MultipltError, match="names no checkpoint"):
        checkpoints.publish_checkpoints([out], "me/m", tags=" , ")
    (tmp_path / "file").write_text("x")
    with pytest.raises(MultipltError, match="--from"):
        checkpoints.publish_checkpoints([str(tmp_path / "file")], "me/m")
    with pytest.raises(MultipltError, match="^no Hugging Face token"):  # not "no data/*.parquet"
        publish_dataset(str(tmp_path / "nosuch"), "me/ds")
    with pytest.raises(MultipltError, match="^no Hugging Face token"):  # not "no results store"
        publish_results(str(tmp_path / "nosuch.parquet"), "me/board")
    # a dry run needs none: it goes on to read the folder
    with pytest.raises(MultipltError, match="not a dataset folder"):
        publish_dataset(str(tmp_path / "train"), "me/ds", dry_run=str(tmp_path / "dry"))
