"""The per-problem results of one recorded run, for the leaderboard's run page.

The results store records where each run's folder is (`run_uri`); the folder's
`<problem>.results.json.gz` files (`multiplt.evaluation.run_folder`) hold every completion's
execution result. Per problem: completions, how many passed (status OK and exit code 0, as
pass@k counts them) and how many ended in each status.
"""

from __future__ import annotations

import collections

from multiplt.errors import MultipltError


def run_rows(store_uri: str, run_id: str) -> list[dict]:
    """The store's rows of one run (one per k); a MultipltError when the run is not recorded."""
    import polars as pl

    from multiplt.results.store import read_store

    rows = read_store(store_uri).filter(pl.col("run_id") == run_id).sort("k").to_dicts()
    if not rows:
        raise MultipltError(f"run {run_id!r} is not in the results store {store_uri}")
    return rows


def _status(result: dict) -> str:
    status = str(result.get("status"))
    return status if status != "OK" or result.get("exit_code") == 0 else f"OK, exit {result.get('exit_code')}"


def per_problem(run_uri: str) -> list[dict]:
    """[{problem, n, passed, statuses: {status: count}}] for every results file of the run
    folder, sorted by problem number; a MultipltError when the folder has none or is gone."""
    from multiplt.evaluation.passk import passed
    from multiplt.evaluation.run_folder import read_results

    rows = []
    for uri, problem, _, results in read_results(run_uri):
        if not all(isinstance(r, dict) for r in results):
            raise MultipltError(f"{uri}: no `results` list of objects")
        statuses = collections.Counter(_status(r) for r in results)
        rows.append({"problem": problem, "n": len(results),
                     "passed": sum(1 for r in results if passed(r)), "statuses": dict(statuses)})
    if not rows:
        from multiplt import storage

        if not storage.exists(run_uri):
            raise MultipltError(f"run folder {run_uri} does not exist (moved or removed since the "
                                f"run was recorded)")
        raise MultipltError(f"{run_uri} has no *.results.json.gz files (was it executed?)")
    return sorted(rows, key=lambda r: _order(r["problem"]))


def _order(problem: str) -> tuple:
    parts = problem.split("_")
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)
