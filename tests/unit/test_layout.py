"""The unit tests mirror the code: every folder under tests/unit/ is named after a package of
multiplt/ or plugins/ (tests of repository-wide files such as docker/ or pyproject.toml sit in
tests/unit/ itself)."""

from __future__ import annotations

import pathlib

REPO = pathlib.Path(__file__).resolve().parents[2]


def packages() -> set[str]:
    found = {p.parent.name for p in (REPO / "multiplt").glob("*/__init__.py")}
    return found | {p.parent.name for p in (REPO / "plugins").glob("*/__init__.py")}


def test_unit_test_folders_mirror_packages():
    folders = {p.name for p in (REPO / "tests" / "unit").iterdir()
               if p.is_dir() and not p.name.startswith(("_", "."))}
    assert folders, "tests/unit has no package folders"
    stray = sorted(folders - packages())
    assert not stray, f"tests/unit/{stray} mirror no package of multiplt/ or plugins/"

