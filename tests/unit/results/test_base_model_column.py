"""`results record` stores the base model a checkpoint was trained from (its training manifest
row's `base`, else its own `_multiplt_train.yaml`) in the `base_model` column, and the
leaderboard pairs the checkpoint's line with that base's run by it; a store written before the
column reads with it null (the leaderboard then pairs by the training output's name)."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from multiplt import storage
from multiplt.results import COLUMNS, read_store, record_runs

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))

from multiplt_leaderboard import board  # noqa: E402

HEADER = "Dataset,Pass@k,Estimate,NumProblems,MinCompletions,MaxCompletions\n"
TAG = "lua-multiplt-epoch1"


def training_output(root: Path, base: str, manifest: bool = True) -> tuple[str, str]:
    """A training output (`root`, its manifest naming `base`) and its checkpoint TAG."""
    ckpt = root / "checkpoints" / TAG
    ckpt.mkdir(parents=True)
    (ckpt / "_multiplt_train.yaml").write_text(yaml.safe_dump({"config": {"base": base, "lang": "lua"}}))
    if manifest:
        storage.write_jsonl(str(root / "manifest.jsonl"), [
            {"uri": str(ckpt), "epoch": 1, "step": 5, "tag": TAG, "eval_loss": 1.0, "lang": "lua",
             "experiment": "multiplt", "base": base, "tokenizer": str(ckpt)}])
    return str(root), str(ckpt)


def run_folder(root: Path, name: str, estimate: float, **record) -> str:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "_scores.csv").write_text(HEADER + f"{name},1,{estimate},4,2,2\n")
    config = {"lang": "lua", "n": 2, "temperature": 0.2, "benchmark": str(root / "humaneval-lua.jsonl"),
              "selection": "", "experiment": "multiplt", **record}
    (folder / "_multiplt_run.yaml").write_text(yaml.safe_dump(config))
    return str(folder)


def test_a_checkpoint_run_records_its_base_and_the_board_pairs_by_it(tmp_path):
    """Two bases evaluated for Lua under one experiment; the output trained from org/b lives
    under a name that names neither (a renamed output): its line starts at org/b's score."""
    out, ckpt = training_output(tmp_path / "moved" / "lua-tuned", "org/b")
    runs = [run_folder(tmp_path / "runs", "base-a", 0.1, model="org/a", epoch=0),
            run_folder(tmp_path / "runs", "base-b", 0.3, model="org/b", epoch=0),
            run_folder(tmp_path / "runs", "tuned", 0.5, model=out, revision=TAG, checkpoint_uri=ckpt,
                       epoch=1)]
    store = str(tmp_path / "results.parquet")
    record_runs(runs, store)
    table = read_store(store)
    assert "base_model" in COLUMNS
    assert dict(zip(table["model"], table["base_model"])) == {"org/a": None, "org/b": None, out: "org/b"}
    series = board.epoch_series(board.load_rows(store))
    assert series[f"lua (multiplt) · {out}"] == [(0, 0.3), (1, 0.5)]
    assert series["lua (multiplt) · org/a"] == [(0, 0.1)]


def test_a_checkpoint_loaded_by_its_folder_records_its_base(tmp_path):
    out, ckpt = training_output(tmp_path / "tr", "/models/sc1b")
    run = run_folder(tmp_path / "runs", "tuned", 0.5, model=ckpt, checkpoint_uri=ckpt,
                     training_output=out, checkpoint_tag=TAG, epoch=1)
    store = str(tmp_path / "results.parquet")
    record_runs([run], store)
    assert read_store(store).row(0, named=True)["base_model"] == "/models/sc1b"


def test_without_a_manifest_row_the_checkpoints_own_run_config_names_the_base(tmp_path):
    out, ckpt = training_output(tmp_path / "tr", "org/b", manifest=False)
    run = run_folder(tmp_path / "runs", "tuned", 0.5, model=out, revision=TAG, checkpoint_uri=ckpt, epoch=1)
    store = str(tmp_path / "results.parquet")
    record_runs([run], store)
    assert read_store(store).row(0, named=True)["base_model"] == "org/b"


def test_a_checkpoint_whose_base_cannot_be_read_is_recorded_with_a_warning(tmp_path, caplog):
    run = run_folder(tmp_path / "runs", "tuned", 0.5, model=str(tmp_path / "gone"), revision=TAG,
                     checkpoint_uri=str(tmp_path / "gone" / "checkpoints" / TAG), epoch=1)
    store = str(tmp_path / "results.parquet")
    record_runs([run], store)
    assert read_store(store).row(0, named=True)["base_model"] is None
    assert "its base model cannot be read" in caplog.text


def test_a_store_written_before_the_column_loads_and_pairs_by_name(tmp_path):
    import polars as pl

    store = str(tmp_path / "old.parquet")
    out = "/w/training/org_b-multiplt-lua"
    rows = [{"run_id": "a", "model": "org/a", "lang": "lua", "experiment": "multiplt", "epoch": 0, "k": 1,
             "estimate": 0.1, "benchmark": "b", "created_at": "2026-01-01"},
            {"run_id": "b", "model": "org/b", "lang": "lua", "experiment": "multiplt", "epoch": 0, "k": 1,
             "estimate": 0.3, "benchmark": "b", "created_at": "2026-01-01"},
            {"run_id": "t", "model": out, "revision": TAG, "lang": "lua", "experiment": "multiplt", "epoch": 1,
             "k": 1, "estimate": 0.5, "benchmark": "b", "created_at": "2026-01-01"}]
    storage.write_parquet(store, pl.DataFrame(rows))
    assert read_store(store)["base_model"].to_list() == [None, None, None]
    series = board.epoch_series(board.load_rows(store))
    assert series[f"lua (multiplt) · {out}"] == [(0, 0.3), (1, 0.5)]
