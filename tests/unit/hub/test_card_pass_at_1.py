"""The model card's pass@1 part read back (a publication without a results store keeps it), eval
loss printed with one number of digits, and why `--tags best` picked its tag (no Hub needed)."""

from __future__ import annotations

from multiplt.hub import cards
from multiplt.hub.checkpoints import PassAt1, why_best

OUT = "file:///runs/training/tiny-multiplt-lua"


def output(losses: dict[int, float | None]) -> dict:
    return {"out": OUT, "config": {"base": "org/base", "lr": 3e-5}, "rows": [
        {"tag": f"lua-multiplt-epoch{e}", "lang": "lua", "epoch": e, "step": 10 * e, "eval_loss": loss}
        for e, loss in losses.items()]}


def test_eval_loss_has_four_decimals_like_pass_at_1():
    card = cards.model_card("me/tiny", [output({1: 5.173, 2: 4.2996, 3: 4.3})], {}, "mit")
    assert "| lua-multiplt-epoch1 | lua | 1 | 10 | 5.1730 |  |" in card
    assert "| lua-multiplt-epoch2 | lua | 2 | 20 | 4.2996 |  |" in card
    assert "| lua-multiplt-epoch3 | lua | 3 | 30 | 4.3000 |  |" in card
    assert "| lr | 3e-05 |" in card  # the recipe's numbers keep their own form


def test_the_pass_at_1_part_of_a_card_reads_back_and_renders_the_same_card():
    out = output({1: 2.5, 2: 2.0, 3: None})
    passk = {"lua-multiplt-epoch1": 0.25, "lua-multiplt-epoch2": 0.5}
    card = cards.model_card("me/tiny", [out], passk, "mit", "humaneval", (164,))
    kept = cards.card_pass_at_1(card)
    assert kept.scores == passk and kept.not_looked_up == frozenset()
    assert kept.tags == {"lua-multiplt-epoch1", "lua-multiplt-epoch2", "lua-multiplt-epoch3"}
    assert kept.note.startswith("pass@1 is on one benchmark (`humaneval`, 164 problems): the one")
    again = cards.model_card("me/tiny", [out], kept.scores, "mit", note=kept.note,
                             not_looked_up=tuple(kept.not_looked_up))
    assert again == card

    # tags published later without a store are named; read back, the card renders the same
    unlooked = cards.model_card("me/tiny", [out], passk, "mit", note=kept.note,
                                not_looked_up=("lua-multiplt-epoch3",))
    assert ("\npass@1 was not looked up for lua-multiplt-epoch3 (published without "
            "`--results-store`).\n\n## Recipe") in unlooked
    kept = cards.card_pass_at_1(unlooked)
    assert kept.not_looked_up == {"lua-multiplt-epoch3"} and kept.scores == passk
    assert cards.model_card("me/tiny", [out], kept.scores, "mit", note=kept.note,
                            not_looked_up=("lua-multiplt-epoch3",)) == unlooked

    # none looked up: one sentence for all, no claim that nothing was evaluated
    none = cards.model_card("me/tiny", [out], {}, "mit", note="", not_looked_up=tuple(kept.tags))
    assert "pass@1 was not looked up (published without `--results-store`)." in none
    assert "until the checkpoints are evaluated" not in none
    assert cards.card_pass_at_1(none).not_looked_up == kept.tags
    assert cards.card_pass_at_1("# a card someone wrote\n\nno table\n") is None


def test_tags_best_says_which_criterion_and_value_chose_the_tag():
    out = output({1: 3.0, 2: 2.5, 3: 2.75})
    pass1 = PassAt1({"lua-multiplt-epoch1": 0.0}, "humaneval", (40,))
    assert why_best(out, pass1, "s3://b/store.parquet") == (
        f"--tags best: lua-multiplt-epoch1 of {OUT}, by pass@1 on `humaneval`, 40 problems: 0.0000, the "
        f"highest of the 1 of its 3 checkpoint(s) evaluated there (ties: the earlier epoch)")
    assert why_best(out, PassAt1({}), None) == (
        f"--tags best: lua-multiplt-epoch2 of {OUT}, by eval loss: 2.5000, the lowest of its 3 "
        f"checkpoint(s) with one (no --results-store given)")
    other = PassAt1({"r-multiplt-epoch1": 0.3}, "humaneval", (161,))
    assert why_best(out, other, "store.parquet") == (
        f"--tags best: lua-multiplt-epoch2 of {OUT}, by eval loss: 2.5000, the lowest of its 3 "
        f"checkpoint(s) with one (none of its checkpoints is evaluated in store.parquet on "
        f"`humaneval`, 161 problems, the benchmark pass@1 compares on)")
    assert why_best(output({1: None, 2: None}), PassAt1({}), "store.parquet") == (
        f"--tags best: lua-multiplt-epoch2 of {OUT}, the last epoch (none of its checkpoints is "
        f"evaluated in store.parquet, and no checkpoint has an eval loss)")
