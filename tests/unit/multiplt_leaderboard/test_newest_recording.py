"""A run evaluated twice (e.g. again at another n) has two rows in the results store; the
leaderboard reads them oldest first (load_rows) so that the newest recording is the one shown,
whatever order the store's file holds them in."""

from __future__ import annotations

import sys
from pathlib import Path

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))

from multiplt_leaderboard import board  # noqa: E402


def recording(run_id: str, created_at: str, estimate: float, n: int) -> dict:
    return {"run_id": run_id, "k": 1, "model": "out/lua", "revision": "lua-multiplt-epoch1",
            "experiment": "multiplt", "lang": "lua", "epoch": 1, "estimate": estimate,
            "num_problems": 4, "n": n, "temperature": 0.2,
            "benchmark": "file:///data/benchmarks/humaneval-lua.jsonl", "created_at": created_at}


def test_the_newest_recording_of_an_entry_is_the_one_shown(tmp_path):
    import polars as pl

    # the newer recording first in the file, the older one after it
    rows = [recording("again@20", "2026-03-02T10:00:00Z", 0.45, 20),
            recording("first@2", "2026-03-01T10:00:00Z", 0.25, 2)]
    path = tmp_path / "results.parquet"
    pl.DataFrame(rows).write_parquet(path)

    loaded = board.load_rows(f"file://{path}")
    assert [r["created_at"] for r in loaded] == ["2026-03-01T10:00:00Z", "2026-03-02T10:00:00Z"]
    languages, entries = board.board(loaded, k=1)
    assert languages == ["lua"]
    (entry,) = entries
    assert entry["cells"]["lua"] == {"estimate": 0.45, "num_problems": 4, "n": 20, "run_id": "again@20",
                                     "timeouts": None}
