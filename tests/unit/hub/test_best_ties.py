"""`--tags best` by pass@1: the highest wins whatever its epoch, and a tie goes to the earlier
epoch (whatever order the checkpoints are listed in). No Hub needed."""

from __future__ import annotations

import pytest

from multiplt.hub.checkpoints import best


def output(epochs: list[int]) -> dict:
    return {"out": "file:///runs/training/tiny-multiplt-lua", "config": {}, "rows": [
        {"tag": f"lua-multiplt-epoch{e}", "lang": "lua", "epoch": e, "step": 10 * e, "eval_loss": 2.0 - e / 10}
        for e in epochs]}


@pytest.mark.parametrize("epochs", [[1, 2, 3, 4], [4, 3, 2, 1]], ids=["in order", "reversed"])
def test_a_pass_at_1_tie_goes_to_the_earlier_epoch(epochs):
    passk = {"lua-multiplt-epoch1": 0.25, "lua-multiplt-epoch2": 0.5, "lua-multiplt-epoch3": 0.5,
             "lua-multiplt-epoch4": 0.5}
    row, by = best(output(epochs), passk)
    assert (row["epoch"], by) == (2, "pass@1")


@pytest.mark.parametrize("epochs", [[1, 2, 3], [3, 2, 1]], ids=["in order", "reversed"])
def test_the_highest_pass_at_1_wins_at_any_epoch(epochs):
    passk = {"lua-multiplt-epoch1": 0.5, "lua-multiplt-epoch2": 0.25, "lua-multiplt-epoch3": 0.75}
    row, by = best(output(epochs), passk)
    assert (row["epoch"], by) == (3, "pass@1")
