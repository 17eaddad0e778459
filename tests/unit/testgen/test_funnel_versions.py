"""The run's funnel adds the shards' steps up by name (multiplt/testgen/funnel.py `merge`): a
shard finished by a version of testgen with other steps (validated before the `flaky` step
existed) is refused, naming both shards, instead of its counts landing on other steps."""

from __future__ import annotations

import pytest

from multiplt import storage
from multiplt.errors import MultipltError
from multiplt.testgen import funnel


def _finish(out: str, shard: str, value: dict) -> None:
    storage.write_json(storage.join(out, "work", shard, "funnel.json"), value)
    storage.write_bytes(storage.join(out, "work", shard, funnel.DONE), b"")


def test_shards_of_two_versions_are_refused_and_of_one_add_up(tmp_path):
    out = str(tmp_path / "tg")
    new = funnel.shard_funnel(5, ["flaky", "low_coverage"])
    old = {"steps": [s for s in funnel.shard_funnel(4, ["low_coverage"])["steps"] if s["name"] != "flaky"]}
    _finish(out, "shard-00000-of-00002", new)
    _finish(out, "shard-00001-of-00002", old)
    with pytest.raises(MultipltError, match="shard shard-00001-of-00002 was finished by another version of "
                                            "testgen than shard shard-00000-of-00002"):
        funnel.merge(out)
    assert not storage.exists(storage.join(out, "funnel.json"))
    _finish(out, "shard-00001-of-00002", funnel.shard_funnel(4, ["low_coverage"]))
    steps = {s["name"]: (s["in"], s["out"]) for s in funnel.merge(out)["steps"]}
    assert steps["flaky"] == (9, 8) and steps["low_coverage"] == (8, 6) and steps["input"] == (9, 9)


def test_the_run_funnel_lists_the_distinct_provenance_of_the_shards_validations(tmp_path):
    """Each shard's funnel.json carries the provenance of the process that validated it (the
    sandbox image may run other code than generate and write); the run's funnel lists the
    distinct ones in shard order, and none for shards validated before it was recorded."""
    out = str(tmp_path / "tg")
    a = {"code_version": "a" * 40, "python": "3.12.1", "libraries": {"coverage": "7.6.1"}}
    b = {**a, "code_version": "b" * 40}
    for k, made_by in enumerate([a, b, a]):
        _finish(out, f"shard-0000{k}-of-00003", {**funnel.shard_funnel(2, []), "provenance": made_by})
    totals = funnel.merge(out)
    assert totals["validate_provenance"] == [a, b]
    assert "provenance" not in totals and storage.read_json(storage.join(out, "funnel.json")) == totals
    old = str(tmp_path / "old")
    _finish(old, "shard-all", funnel.shard_funnel(2, []))
    assert "validate_provenance" not in funnel.merge(old)
