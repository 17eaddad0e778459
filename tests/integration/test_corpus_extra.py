"""The `corpus` extra alone runs `multiplt corpus build` (a Python that sees only the core
install plus that extra's distributions, as in tests/unit/test_packaging.py)."""

from __future__ import annotations

import json

import pytest

from tests.integration.test_corpus_build import check_planted, planted_corpus
from tests.unit.test_packaging import multiplt_with_only, sites  # noqa: F401 (the fixture)

pytestmark = pytest.mark.slow


def test_corpus_extra_builds_the_planted_corpus(sites, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    multiplt_with_only(sites, ("corpus",), "corpus", "build", "--source",
                       str(planted_corpus(tmp_path)), "--out", str(out))
    check_planted(out)
    assert json.loads((out / "funnel.json").read_text())["steps"][-1]["out"] == 6
