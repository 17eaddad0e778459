"""The checkpoint card names its training data on the Hub where it is there: a dataset folder that
`multiplt publish dataset` published (its published.json: repo and commit) as `REPO@COMMIT` in
the Recipe and the repo in the card's `datasets:` front matter, as a Hub dataset at the commit
the run recorded (`dataset_commit`); an unpublished folder keeps its public name NAME~HASH. The
Recipe shows the commit a Hub base was trained from (`base_commit`). A card read back and
written again says the same."""

from __future__ import annotations

import json

import yaml

from multiplt.hub import cards
from multiplt.hub.checkpoints import dataset_on_hub, load_output
from multiplt.hub.results import place_name

COMMIT = "0123456789abcdef0123456789abcdef01234567"
BASE_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


def training_output(tmp_path, dataset: str, **recorded) -> str:
    """A training output as `multiplt train` leaves it (its manifest and run config)."""
    out = tmp_path / "out"
    out.mkdir()
    config = {"dataset": dataset, "base": "bigcode/starcoderbase-1b", "base_revision": "", "split": "lua",
              "lang": "lua", "experiment": "x", "epochs": 1, "lr": 3e-5}
    (out / "_multiplt_train.yaml").write_text(yaml.safe_dump({"config": config, **recorded}))
    (out / "manifest.jsonl").write_text(json.dumps(
        {"uri": str(out / "checkpoints" / "lua-x-epoch1"), "tag": "lua-x-epoch1", "epoch": 1, "lang": "lua",
         "experiment": "x", "step": 3, "eval_loss": 1.25}) + "\n")
    return str(out)


def front(card: str) -> dict:
    return yaml.safe_load(card.split("---\n")[1])


def test_a_published_dataset_folder_is_named_by_its_repo_and_commit(tmp_path):
    folder = tmp_path / "luads"
    (folder / "data").mkdir(parents=True)
    (folder / "published.json").write_text(json.dumps(
        {"repo": "me/luads", "revision": "main", "commit": COMMIT, "url": "http://hub/datasets/me/luads"}))
    out = training_output(tmp_path, str(folder), base_commit=BASE_COMMIT, dataset_commit=None)
    card = cards.model_card("me/ck2", [load_output(out)], {}, "mit")
    recipe = card.split("## Recipe", 1)[1]
    assert f"| dataset | me/luads@{COMMIT} |" in recipe
    assert f"| base_commit | {BASE_COMMIT} |" in recipe
    assert place_name(str(folder)) not in card and str(tmp_path) not in card
    assert front(card)["datasets"] == ["me/luads"]
    # read back from the card (a later publication keeps the row): the same card
    kept = cards.card_pass_at_1(card).recipes[("lua", "x")]
    assert cards.model_card("me/ck2", [{"config": {"lang": "lua", "experiment": "x", **kept},
                                        "rows": load_output(out)["rows"]}], {}, "mit") == card
    # the run read its `data/` folder or a data file in it: the folder's publication still counts
    for read in (folder / "data", folder / "data" / "lua.parquet"):
        assert dataset_on_hub(str(read), None) == f"me/luads@{COMMIT}"


def test_an_unpublished_folder_keeps_its_public_name(tmp_path):
    folder = tmp_path / "luads"
    folder.mkdir()
    card = cards.model_card("me/ck2", [load_output(training_output(tmp_path, str(folder)))], {}, "mit")
    assert f"| dataset | {place_name(str(folder))} |" in card
    assert "datasets" not in front(card) and "base_commit" not in card
    (folder / "published.json").write_text("{}")  # names no repo: the same, with a warning
    assert dataset_on_hub(str(folder), None) is None


def test_a_hub_dataset_is_named_at_the_recorded_commit(tmp_path):
    out = training_output(tmp_path, "nuprl/MultiPL-T", base_commit=BASE_COMMIT, dataset_commit=COMMIT)
    card = cards.model_card("me/ck2", [load_output(out)], {}, "mit")
    assert f"| dataset | nuprl/MultiPL-T@{COMMIT} |" in card
    assert front(card)["datasets"] == ["nuprl/MultiPL-T"]
    # a run that recorded no commit (trained before runs recorded one): the name as before
    (tmp_path / "out" / "_multiplt_train.yaml").write_text(yaml.safe_dump(
        {"config": {**yaml.safe_load((tmp_path / "out" / "_multiplt_train.yaml").read_text())["config"]}}))
    card = cards.model_card("me/ck2", [load_output(out)], {}, "mit")
    assert "| dataset | nuprl/MultiPL-T |" in card and front(card)["datasets"] == ["nuprl/MultiPL-T"]


def test_the_card_of_a_run_on_a_published_dataset_names_it(test_hub, tiny_model, tmp_path, capsys):
    """As a user does it: publish the dataset folder, train on the folder, publish the checkpoints."""
    import polars as pl
    import torch
    from huggingface_hub import hf_hub_download

    from multiplt import cli

    folder = tmp_path / "DS"
    (folder / "data").mkdir(parents=True)
    docs = [f"local function f{i}(x) return x + {i * 37} end" for i in range(40)]
    pl.DataFrame({"content": docs}).write_parquet(folder / "data" / "lua-00000-of-00001.parquet")
    assert cli.main(["publish", "dataset", "--from", str(folder), "--repo", "me/luads"]) == 0
    published = json.loads((folder / "published.json").read_text())
    assert published["commit"] == test_hub.repos[("dataset", "me/luads")].branches["main"]
    out = tmp_path / "T"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert cli.main(["train", "--recipe", "tiny", "--dataset", str(folder), "--base", tiny_model,
                         "--lang", "lua", "--experiment", "x", "--seq-len", "16", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(before)
    capsys.readouterr()
    assert cli.main(["publish", "checkpoints", "--from", str(out), "--repo", "me/ck2"]) == 0
    with open(hf_hub_download("me/ck2", "README.md")) as f:
        card = f.read()
    assert f"| dataset | me/luads@{published['commit']} |" in card
    assert front(card)["datasets"] == ["me/luads"]
    assert place_name(str(folder)) not in card


def test_only_files_of_the_published_data_folder_are_credited(tmp_path):
    """`publish dataset` publishes `data/<split>-*.parquet` only: a run on a file of data/ is
    credited with the folder's publication, a run on another file of that folder is not."""
    folder = tmp_path / "pub"
    (folder / "data").mkdir(parents=True)
    (folder / "published.json").write_text('{"repo": "org/ds", "commit": "c0ffee"}')
    assert dataset_on_hub(str(folder / "data" / "lua-00000-of-00001.parquet"), None) == "org/ds@c0ffee"
    assert dataset_on_hub(str(folder / "data"), None) == "org/ds@c0ffee"
    assert dataset_on_hub(str(folder), None) == "org/ds@c0ffee"
    assert dataset_on_hub(str(folder / "extra.jsonl"), None) is None
