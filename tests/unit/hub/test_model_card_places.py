"""The model card's Recipe names a base model, dataset or recipe file at a place of the deployment
(a local path, a storage URI) by its public name NAME~HASH, as `publish results` names places;
Hub ids and plain values as they are. A card read back and written again keeps its names."""

from __future__ import annotations

from multiplt.hub import cards
from multiplt.hub.results import place_name


def output(**config) -> dict:
    return {"config": {"lang": "lua", "experiment": "multiplt", "epochs": 2, **config},
            "rows": [{"tag": "lua-multiplt-epoch1", "lang": "lua", "epoch": 1, "step": 10, "eval_loss": 1.5}]}


def test_recipe_places_are_public_names_and_hub_ids_stay():
    card = cards.model_card("ns/tuned", [output(base="/srv/models/tiny/", dataset="file:///data/translate/lua",
                                                recipe="s3://bucket/recipes/mine.yaml")], {}, "mit")
    recipe = card.split("## Recipe", 1)[1]
    assert f"| base | {place_name('/srv/models/tiny/')} |" in recipe
    assert place_name("/srv/models/tiny/").startswith("tiny~")
    assert f"| dataset | {place_name('file:///data/translate/lua')} |" in recipe
    assert f"| recipe | {place_name('s3://bucket/recipes/mine.yaml')} |" in recipe
    assert "/srv" not in card and "file://" not in card and "s3://" not in card
    hub = cards.model_card("ns/tuned", [output(base="bigcode/starcoderbase-1b", dataset="nuprl/MultiPL-T",
                                               recipe="starcoderbase-1b")], {}, "mit")
    assert "| base | bigcode/starcoderbase-1b |" in hub and "| dataset | nuprl/MultiPL-T |" in hub
    assert "base_model: bigcode/starcoderbase-1b" in hub


def test_a_card_read_back_gives_the_same_card():
    """union_outputs carries the card's recipes (cards._recipes): public names stay as they are,
    and a card an earlier version wrote with paths gets them replaced."""
    from multiplt.hub.results import public_places

    old = {"base": "/srv/models/tiny", "dataset": "nuprl/MultiPL-T"}
    first = cards.model_card("ns/tuned", [output(**old)], {}, "mit")
    kept = cards.card_pass_at_1(first).recipes[("lua", "multiplt")]
    assert kept["base"] == place_name("/srv/models/tiny")
    assert cards.model_card("ns/tuned", [output(**kept)], {}, "mit") == first
    assert public_places({"a": ["/x/y", "org/m", 3], "b": place_name("/x/y")}) == {
        "a": [place_name("/x/y"), "org/m", 3], "b": place_name("/x/y")}
