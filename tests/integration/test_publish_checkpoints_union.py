"""`multiplt publish checkpoints` to a repo that holds other checkpoints already (test Hub): the
card lists every checkpoint on the repo, not only this publication's, whatever the order of the
publications; a tag that is gone leaves the card; a tag of another base model is a conflict that
points to a repo per base, not to --force."""

from __future__ import annotations

import json

import pytest

from multiplt import cli
from tests.integration.test_publish_checkpoints import make_training_output, record_pass1
from tests.integration.test_publish_checkpoints_card import commits, hub_card

LUA = [f"lua-multiplt-epoch{e}" for e in (1, 2)]
RKT = [f"rkt-multiplt-epoch{e}" for e in (1, 2)]


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setenv("MULTIPLT_HUB_BACKOFF", "0.01")


def publish(capsys, out: str, repo: str, *flags: str) -> dict:
    assert cli.main(["publish", "checkpoints", "--from", out, "--repo", repo, *flags]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def table_tags(card: str) -> list[str]:
    from multiplt.hub import cards

    return [row["tag"] for row in cards.card_pass_at_1(card).rows]


def test_two_languages_published_one_after_the_other_are_both_on_the_card(test_hub, tmp_path, tiny_model,
                                                                          capsys):
    lua = make_training_output(tmp_path, tiny_model, lang="lua", name="lua-out")
    rkt = make_training_output(tmp_path, tiny_model, lang="rkt", name="rkt-out")
    lua_store, rkt_store = str(tmp_path / "lua.parquet"), str(tmp_path / "rkt.parquet")
    record_pass1(lua_store, lua, {1: 0.25, 2: 0.5}, lang="lua")
    record_pass1(rkt_store, rkt, {1: 0.125, 2: 0.375}, lang="rkt")
    repo = "ns/multi"
    publish(capsys, lua, repo, "--results-store", lua_store)
    assert publish(capsys, rkt, repo, "--results-store", rkt_store)["tags"] == RKT
    card = hub_card(repo)
    assert table_tags(card) == LUA + RKT
    # the Lua rows keep their pass@1 (the Racket store does not score them; same benchmark)
    assert f"| {LUA[1]} | lua | 2 | 20 | 2.0000 | 0.5000 |" in card
    assert f"| {RKT[1]} | rkt | 2 | 20 | 2.0000 | 0.3750 |" in card
    assert "\nlua / multiplt:\n" in card and "\nrkt / multiplt:\n" in card
    assert "- lua\n" in card and "- rkt\n" in card  # the YAML tags name both languages
    assert "not looked up" not in card

    # reruns of either publication, with or without their store, change nothing: no commit
    history = commits(repo)
    for out, flags in ((rkt, ["--results-store", rkt_store]), (lua, ["--results-store", lua_store]),
                       (rkt, []), (lua, [])):
        again = publish(capsys, out, repo, *flags)
        assert (again["tags"], again["commits"]) == ([], 0), (out, flags)
    assert commits(repo) == history and hub_card(repo) == card


def test_tags_best_after_all_keeps_the_other_tags_on_the_card(test_hub, tmp_path, tiny_model, capsys):
    out = make_training_output(tmp_path, tiny_model, epochs=3)
    repo = "ns/bestafter"
    publish(capsys, out, repo)
    card, history = hub_card(repo), commits(repo)
    best = publish(capsys, out, repo, "--tags", "best")
    assert (best["skipped"], best["commits"]) == (["lua-multiplt-epoch3"], 0)
    assert commits(repo) == history and hub_card(repo) == card
    assert table_tags(card) == [f"lua-multiplt-epoch{e}" for e in (1, 2, 3)]


def test_a_tag_deleted_from_the_repo_leaves_the_card(test_hub, tmp_path, tiny_model, capsys):
    from huggingface_hub import HfApi

    lua = make_training_output(tmp_path, tiny_model, lang="lua", name="lua-out")
    rkt = make_training_output(tmp_path, tiny_model, lang="rkt", name="rkt-out", epochs=1)
    repo = "ns/gone"
    publish(capsys, lua, repo)
    HfApi().delete_tag(repo, tag=LUA[0])
    publish(capsys, rkt, repo)
    assert table_tags(hub_card(repo)) == [LUA[1], RKT[0]]


def test_a_tag_of_another_base_model_points_to_a_repo_per_base(test_hub, tmp_path, tiny_model, capsys):
    first = make_training_output(tmp_path, tiny_model, base="org-a/coder", name="a-out")
    second = make_training_output(tmp_path, tiny_model, base="org-b/coder", name="b-out")
    repo = "ns/fixed"
    publish(capsys, first, repo)
    before = dict(test_hub.repos[("model", repo)].tags)
    assert cli.main(["publish", "checkpoints", "--from", second, "--repo", repo]) == 2
    err = capsys.readouterr().err
    assert (f"tag {LUA[0]} already exists on {repo} with the checkpoint of another base model "
            f"(org-a/coder; this one's is org-b/coder); nothing was uploaded") in err
    assert "checkpoints_repo with {base}" in err and "use --force" not in err
    assert err.count("\n") == 1 and test_hub.repos[("model", repo)].tags == before

    # the same base retrained: the tag has other files, and --force is the way to move it
    again = make_training_output(tmp_path, tiny_model, base="org-a/coder", name="a-again", epochs=1)
    with open(f"{again[len('file://'):]}/checkpoints/{LUA[0]}/generation_config.json", "w") as f:
        f.write('{"max_new_tokens": 7}')
    assert cli.main(["publish", "checkpoints", "--from", again, "--repo", repo]) == 2
    assert "with other files; nothing was uploaded (use --force to move it)" in capsys.readouterr().err


def test_published_checkpoints_are_recorded_and_named_by_the_results_card(test_hub, tmp_path, tiny_model,
                                                                          capsys):
    """The training output gets published.json (repo, its tags there), and `publish results`
    names its checkpoints as the Hub does (model REPO, revision TAG; `REPO@TAG` on the card), not
    by the deployment's folder."""
    from huggingface_hub import hf_hub_download

    from multiplt import storage

    out = make_training_output(tmp_path, tiny_model)
    store = str(tmp_path / "results.parquet")
    record_pass1(store, out, {1: 0.25, 2: 0.5})
    publish(capsys, out, "ns/rec", "--tags", LUA[1])
    assert storage.read_json(f"{out}/published.json") == {"repo": "ns/rec", "tags": [LUA[1]],
                                                          "url": f"{test_hub.url}/ns/rec"}
    publish(capsys, out, "ns/rec", "--tags", LUA[0])  # a later publication adds its tags
    assert storage.read_json(f"{out}/published.json")["tags"] == LUA
    assert cli.main(["publish", "results", "--store", store, "--repo", "ns/board"]) == 0
    card = open(hf_hub_download("ns/board", "README.md", repo_type="dataset")).read()
    assert "| temperature | pass@1 | on the Hub |" in card
    assert f"| ns/rec | {LUA[1]} | lua | 2 |  | 0.5000 | ns/rec@{LUA[1]} |" in card
    assert out not in card  # the deployment's folder is not published
