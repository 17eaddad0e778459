"""`multiplt publish checkpoints` reruns against the test Hub: without --results-store the card
keeps the pass@1 that a publication with one put there (no commit), names the checkpoints whose
pass@1 was not looked up, and `--tags best` logs why it chose its tag."""

from __future__ import annotations

import json

import pytest

from multiplt import cli
from tests.integration.test_publish_checkpoints import make_training_output, record_pass1

E1, E2, E3 = (f"lua-multiplt-epoch{e}" for e in (1, 2, 3))
NOTE = "pass@1 is on one benchmark (unnamed in the results store, 4 problems): the one on which"


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setenv("MULTIPLT_HUB_BACKOFF", "0.01")


@pytest.fixture
def train_out(tmp_path, tiny_model) -> str:
    return make_training_output(tmp_path, tiny_model)


def hub_card(repo: str) -> str:
    from huggingface_hub import hf_hub_download

    with open(hf_hub_download(repo, "README.md")) as f:
        return f.read()


def commits(repo: str) -> list[str]:
    from huggingface_hub import HfApi

    return [c.commit_id for c in HfApi().list_repo_commits(repo)]


def publish(capsys, out: str, repo: str, *flags: str) -> dict:
    assert cli.main(["publish", "checkpoints", "--from", out, "--repo", repo, *flags]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_a_rerun_without_results_store_keeps_the_cards_pass_at_1(test_hub, tmp_path, tiny_model, capsys):
    out = make_training_output(tmp_path, tiny_model, epochs=3)
    store = str(tmp_path / "results.parquet")
    record_pass1(store, out, {1: 0.25, 2: 0.5})
    repo = "ns/keep"
    first = publish(capsys, out, repo, "--tags", f"{E1},{E2}", "--results-store", store)
    assert first["tags"] == [E1, E2]
    history = commits(repo)
    card = hub_card(repo)
    assert f"| {E2} | lua | 2 | 20 | 2.0000 | 0.5000 |" in card and NOTE in card

    # the same publication without the store: every tag skipped, and no card commit
    again = publish(capsys, out, repo, "--tags", f"{E1},{E2}")
    assert (again["skipped"], again["tags"], again["commits"]) == ([E1, E2], [], 0)
    assert commits(repo) == history
    assert hub_card(repo) == card
    assert "until the checkpoints are evaluated" not in card and "not looked up" not in card

    # a new tag without the store: the card keeps epochs 1 and 2's pass@1 and names epoch 3's as
    # not looked up (it may well be evaluated); a rerun of that commits nothing either
    added = publish(capsys, out, repo)
    assert (added["tags"], added["skipped"], added["commits"]) == ([E3], [E1, E2], 1)
    card = hub_card(repo)
    assert f"| {E1} | lua | 1 | 10 | 2.5000 | 0.2500 |" in card
    assert f"| {E2} | lua | 2 | 20 | 2.0000 | 0.5000 |" in card
    assert f"| {E3} | lua | 3 | 30 | 1.5000 |  |" in card and NOTE in card
    assert f"\npass@1 was not looked up for {E3} (published without `--results-store`).\n" in card
    history = commits(repo)
    assert publish(capsys, out, repo)["commits"] == 0
    assert commits(repo) == history and hub_card(repo) == card

    # with the store again (epoch 3 now evaluated): the card is refreshed, one commit
    record_pass1(store, out, {1: 0.25, 2: 0.5, 3: 0.75})
    refreshed = publish(capsys, out, repo, "--results-store", store)
    assert refreshed["commits"] == 1 and len(commits(repo)) == len(history) + 1
    card = hub_card(repo)
    assert f"| {E3} | lua | 3 | 30 | 1.5000 | 0.7500 |" in card and "not looked up" not in card


def test_a_first_publication_without_results_store_says_pass_at_1_was_not_looked_up(
        test_hub, train_out, capsys):
    publish(capsys, train_out, "ns/nostore")
    card = hub_card("ns/nostore")
    assert "\npass@1 was not looked up (published without `--results-store`).\n" in card
    assert "until the checkpoints are evaluated" not in card
    history = commits("ns/nostore")
    assert publish(capsys, train_out, "ns/nostore")["commits"] == 0
    assert commits("ns/nostore") == history


def test_tags_best_logs_the_criterion_and_value(test_hub, tmp_path, tiny_model, capsys):
    out = make_training_output(tmp_path, tiny_model, epochs=3)  # eval loss: 2.5, 2.0, 1.5
    store = str(tmp_path / "results.parquet")
    record_pass1(store, out, {1: 0.0})  # only epoch 1 is evaluated
    assert cli.main(["publish", "checkpoints", "--from", out, "--repo", "ns/best", "--tags", "best",
                     "--results-store", store]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["tags"] == [E1]
    assert (f"INFO multiplt.hub: --tags best: {E1} of {out}, by pass@1 on unnamed in the results "
            f"store, 4 problems: 0.0000, the highest of the 1 of its 3 checkpoint(s) evaluated there "
            f"(ties: the earlier epoch)") in captured.err
    assert cli.main(["publish", "checkpoints", "--from", out, "--repo", "ns/best2", "--tags", "best"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["tags"] == [E3]
    assert (f"INFO multiplt.hub: --tags best: {E3} of {out}, by eval loss: 1.5000, the lowest of its 3 "
            f"checkpoint(s) with one (no --results-store given)") in captured.err
