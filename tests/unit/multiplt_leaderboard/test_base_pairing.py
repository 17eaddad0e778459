"""The leaderboard's plot pairs a fine-tuned checkpoint's line with the base model it was trained
from by the results store's `base_model` column (the checkpoint's training manifest's `base`),
not by the training output's name; rows without it (stores recorded before the column, a run
whose manifest could not be read) keep the name rule (`<base>-<experiment>-<lang>`)."""

from __future__ import annotations

import sys
from pathlib import Path

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))

from multiplt_leaderboard import board  # noqa: E402


def row(model, epoch, estimate, base_model=None, lang="lua", experiment="multiplt"):
    return {"model": model, "revision": f"{lang}-{experiment}-epoch{epoch}" if epoch else None,
            "experiment": experiment, "lang": lang, "epoch": epoch, "k": 1, "estimate": estimate,
            "num_problems": 4, "n": 2, "temperature": 0.2, "benchmark": "b", "created_at": "2026-01-01",
            "run_id": f"{model}{epoch}", "base_model": base_model}


def test_a_checkpoint_of_another_base_is_not_paired_with_the_only_base_there():
    """One base (org/a) evaluated; the tuned output (trained from org/b, whose own run is not in
    the store) has a name that names no base: the name rule took the only base there."""
    rows = [row("org/a", 0, 0.1), row("/w/training/lua-tuned", 1, 0.5, base_model="org/b"),
            row("/w/training/lua-tuned", 2, 0.6, base_model="org/b")]
    assert board.epoch_series(rows) == {"lua (multiplt) · org/a": [(0, 0.1)],
                                        "lua (multiplt) · /w/training/lua-tuned": [(1, 0.5), (2, 0.6)]}


def test_a_renamed_training_output_is_paired_with_its_base_among_several():
    """Two bases of one language and experiment; the output was moved to a name that is not
    `<base>-<experiment>-<lang>`: the name rule paired it with neither."""
    rows = [row("org/a", 0, 0.1), row("org/b", 0, 0.3),
            row("/w/moved/b-v2", 1, 0.5, base_model="org/b"),
            row("/w/training/org_a-multiplt-lua", 1, 0.2, base_model="org/a")]
    series = board.epoch_series(rows)
    assert series == {"lua (multiplt) · /w/moved/b-v2": [(0, 0.3), (1, 0.5)],
                      "lua (multiplt) · /w/training/org_a-multiplt-lua": [(0, 0.1), (1, 0.2)]}


def test_the_base_column_wins_over_a_name_that_names_another_base():
    """`org_a-multiplt-lua` trained from org/b (an output reused for another base): paired by
    the manifest's base, not the name."""
    rows = [row("org/a", 0, 0.1), row("org/b", 0, 0.3),
            row("/w/training/org_a-multiplt-lua", 1, 0.5, base_model="org/b")]
    series = board.epoch_series(rows)
    assert series["lua (multiplt) · /w/training/org_a-multiplt-lua"] == [(0, 0.3), (1, 0.5)]
    assert series["lua (multiplt) · org/a"] == [(0, 0.1)]


def test_a_local_base_pairs_however_the_path_is_spelled():
    """The manifest names a local base by its absolute path; its own run may name it as a
    `file://` URI or with a trailing `/`."""
    rows = [row("file:///models/sc1b/", 0, 0.1), row("/models/other", 0, 0.2),
            row("s3://b/training/x", 1, 0.5, base_model="/models/sc1b")]
    series = board.epoch_series(rows)
    assert series["lua (multiplt) · s3://b/training/x"] == [(0, 0.1), (1, 0.5)]
    assert "lua (multiplt) · file:///models/sc1b/" not in series


def test_rows_without_the_column_keep_the_name_rule():
    rows = [row("org/a", 0, 0.1), row("org/b", 0, 0.3), row("/w/training/org_b-multiplt-lua", 1, 0.5),
            {k: v for k, v in row("/w/training/org_a-multiplt-lua", 1, 0.2).items() if k != "base_model"}]
    series = board.epoch_series(rows)
    assert series == {"lua (multiplt) · /w/training/org_a-multiplt-lua": [(0, 0.1), (1, 0.2)],
                      "lua (multiplt) · /w/training/org_b-multiplt-lua": [(0, 0.3), (1, 0.5)]}
