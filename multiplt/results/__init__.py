"""The results store: one parquet table of scored runs, the source of the leaderboard.

``record_runs`` appends the pass@k rows of scored run folders (``_scores.csv`` plus the
``_multiplt_run.yaml`` that generate wrote) to the table; ``read_store`` returns it.
"""

from multiplt.results.run_record import load_run_rows
from multiplt.results.schema import COLUMNS, KEY
from multiplt.results.store import read_store, record_runs

__all__ = ["COLUMNS", "KEY", "load_run_rows", "read_store", "record_runs"]
