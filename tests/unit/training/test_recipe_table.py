"""docs/training.md's recipe table is the built-in recipes: one row per recipe file, and its lr,
batch, warm-up, epochs, weight decay, sequence length and eval share are those the file sets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from multiplt.training.config import load_recipe, recipe_names

DOC = Path(__file__).resolve().parents[3] / "docs" / "training.md"


def _table() -> dict[str, dict[str, str]]:
    text = DOC.read_text()
    section = text[text.index("## Recipes"):]
    lines = []
    for line in section.splitlines()[1:]:  # the first table after the heading
        if line.startswith("|"):
            lines.append(line)
        elif lines:
            break
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:  # after the header and its |---| line
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = dict(zip(header, cells))
    return rows


def _number(cell: str) -> float:
    """The leading number of a cell ("8 (micro-batch ...)" -> 8, "1%" -> 0.01, "3e-5" -> 3e-5)."""
    match = re.match(r"[0-9.]+(?:e-?[0-9]+)?%?", cell)
    assert match, f"no number at the start of {cell!r}"
    value = match.group()
    return float(value[:-1]) / 100 if value.endswith("%") else float(value)


def test_one_row_per_built_in_recipe():
    assert sorted(_table()) == recipe_names()


@pytest.mark.parametrize("name", recipe_names())
def test_the_row_says_what_the_recipe_sets(name):
    row, recipe = _table()[name], load_recipe(name)
    for column, field in (("lr", "lr"), ("batch", "batch_size"), ("warmup", "warmup_steps"),
                          ("epochs", "epochs"), ("wd", "weight_decay"), ("seq", "seq_len"),
                          ("eval", "eval_fraction")):
        assert _number(row[column]) == pytest.approx(recipe[field]), (name, column)


def test_every_file_of_the_recipes_folder_is_a_named_recipe():
    """recipe_names() and the package data take `*.yaml`: a `.yml` (or other) file there would be
    shipped or not, but never found by its name."""
    from multiplt.training.config import RECIPES_DIR

    files = sorted(p.name for p in RECIPES_DIR.iterdir() if p.is_file())
    assert files == sorted(f"{name}.yaml" for name in recipe_names())
