"""`multiplt translate` end to end (replay backend, the sandbox and its fork servers): a
translation that exits 0 before or instead of running its tests is excluded (`collect.NO_NONCE`) and never reaches data/, so a right translation is not dropped as
its near duplicate; the kept rows carry their function's test counts and the funnel counts the
tests in and translated."""

import json
import os

import polars as pl
import pytest

from multiplt import cli, languages, storage
from multiplt.languages import get
from multiplt.translation import writer
from multiplt.translation.collect import NO_NONCE
from tests.fixtures import translate as fx
from tests.integration.test_translate import require_runtime
from tests.unit.translation.test_tests_nonce import ADD_ONE, CHEATS

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("code", languages.targets())
def test_translations_that_skip_their_tests_are_not_kept(code, tmp_path):
    require_runtime(code)
    (tmp_path / "tests").mkdir()
    pl.DataFrame([ADD_ONE]).write_parquet(tmp_path / "tests" / "part-0.parquet")
    samples = CHEATS[code] + [fx.COMPLETIONS[code]["add_one"][0]]  # the right one last
    (tmp_path / "replay.jsonl").write_text("".join(
        json.dumps({"name": ADD_ONE["sha1"], "completion": c}) + "\n" for c in samples))
    out = tmp_path / "out"
    assert cli.main(["translate", "--tests", str(tmp_path / "tests"), "--lang", code, "--out", str(out),
                     "--backend", "replay", "--replay-source", str(tmp_path / "replay.jsonl"),
                     "--n", str(len(samples)), "--timeout", str(fx.TIMEOUT), "--workers", "1"]) == 0
    split = get(code).split
    data = pl.read_parquet(os.path.join(out, "data", f"{split}-00000-of-00001.parquet"))
    assert [(r["sample"], r["translated_tests"], r["source_tests"]) for r in data.iter_rows(named=True)] \
        == [(len(samples) - 1, 3, 3)]
    excluded = pl.read_parquet(writer.excluded_uri(str(out), split, (0, 1)))
    assert [(r["sample"], r["reason"]) for r in excluded.iter_rows(named=True)] \
        == [(i, NO_NONCE) for i in range(len(CHEATS[code]))]
    funnel = storage.read_json(str(out / "funnel.json"))[code]
    assert (funnel["tests_in"], funnel["tests_translated"], funnel["passed"]) == (3, 3, 1)
    assert funnel["dropped"] == {NO_NONCE: len(CHEATS[code])}
