"""The stages `multiplt publish dataset` follows for its card (multiplt/hub/dataset.py
`provenance`): testgen's per-shard `work/<shard>/config.json`, inputs named by a stage's data
folder or one file of it, and nothing above a folder that is no stage's."""

from __future__ import annotations

from multiplt import storage
from multiplt.hub.dataset import provenance


def write_chain(root, tests_input: str, functions_input: str) -> None:
    storage.write_json(f"{root}/corpus/funnel.json", {"steps": [{"name": "extract", "in": 3, "out": 2}]})
    storage.write_bytes(f"{root}/corpus/functions/part-0.parquet", b"")
    storage.write_json(f"{root}/tg/funnel.json", {"steps": [{"name": "input", "in": 2, "out": 2}]})
    storage.write_bytes(f"{root}/tg/tests/shard-all.parquet", b"")
    for shard in ("shard-00000-of-00002", "shard-00001-of-00002"):
        storage.write_json(storage.join(root, "tg", "work", shard, "config.json"), {
            "functions": functions_input, "out": f"{root}/tg", "backend": "vllm", "model": "org/writer",
            "n": 5, "temperature": 0.2, "shard": shard})
    storage.write_json(f"{root}/tr/funnel.json", {"lua": {"functions_in": 2}})
    storage.write_json(f"{root}/tr/config/lua-0-of-1.json", {
        "tests": tests_input, "out": f"{root}/tr", "language": "lua", "model": "org/translator"})


def test_testgen_work_configs_and_its_input_are_followed(tmp_path):
    root = str(tmp_path)
    write_chain(root, f"{root}/tg", f"{root}/corpus")
    stages = provenance(f"{root}/tr")
    assert [s["uri"] for s in stages] == [f"{root}/tr", f"{root}/tg", f"{root}/corpus"]
    assert sorted(stages[1]["configs"]) == ["work/shard-00000-of-00002/config.json",
                                            "work/shard-00001-of-00002/config.json"]
    assert stages[1]["configs"]["work/shard-00000-of-00002/config.json"]["model"] == "org/writer"
    assert list(stages[2]["funnels"]) == ["funnel.json"] and stages[2]["configs"] == {}


def test_a_data_folder_or_file_input_is_followed_to_its_stage(tmp_path):
    root = str(tmp_path)
    write_chain(root, f"file://{root}/tg/tests/", f"{root}/corpus/functions/part-0.parquet")
    stages = provenance(f"file://{root}/tr")
    assert [s["uri"] for s in stages] == [f"file://{root}/tr", f"file://{root}/tg", f"{root}/corpus"]


def test_nothing_above_an_input_that_is_no_stage(tmp_path):
    root = str(tmp_path)
    storage.write_json(f"{root}/funnel.json", {"unrelated": 1})  # two folders above the input
    write_chain(root, f"{root}/elsewhere/tests", f"{root}/corpus")
    storage.write_bytes(f"{root}/elsewhere/tests/x.parquet", b"")
    assert [s["uri"] for s in provenance(f"{root}/tr")] == [f"{root}/tr"]
