"""Every pattern of pyproject.toml's package-data names files of the tree: a pattern matching
nothing (it listed a `py.typed` the package never had) claims what a wheel does not hold."""

import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_every_package_data_pattern_matches_a_file():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    empty = [f"{package}: {pattern}" for package, patterns in data.items() for pattern in patterns
             if not any(p.is_file() for p in (ROOT / package.replace(".", "/")).glob(pattern))]
    assert not empty, empty
