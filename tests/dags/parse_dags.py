"""Parse every DAG file of dags/ with database and network access blocked, and print a JSON
description of what was parsed (used by test_dag_hygiene.py in a subprocess).

    python tests/dags/parse_dags.py FOLDER:RUNTIME [FOLDER:RUNTIME...]

prints one `PARSED-DAGS <json>` line per pass (RUNTIME: the `[multiplt] runtime`, local or
docker); the repository's plugins/ is on sys.path, as in Airflow.

Airflow itself is imported first (its settings module may set up an engine object); from then
on any socket connect, DNS lookup, engine creation or pool checkout raises and is recorded.
"""

from __future__ import annotations

import json
import socket
import sys
import traceback
from pathlib import Path

VIOLATIONS: list[str] = []


def _asset_names(schedule) -> list[str]:
    """Names of the Assets (and Asset references) in a schedule: a list, AssetAny/AssetAll."""
    if isinstance(schedule, (list, tuple)):
        return [n for item in schedule for n in _asset_names(item)]
    if hasattr(schedule, "objects"):
        return _asset_names(list(schedule.objects))
    name = getattr(schedule, "name", None)
    return [name] if isinstance(name, str) else []


def _blocked(what: str):
    def refuse(*args, **kwargs):
        stack = "".join(traceback.format_stack(limit=8)[:-1])
        VIOLATIONS.append(f"{what} while parsing DAGs:\n{stack}")
        raise RuntimeError(f"{what} is not allowed while parsing DAG files")
    return refuse


def block_io() -> None:
    import sqlalchemy
    import sqlalchemy.engine
    import sqlalchemy.pool

    socket.socket.connect = _blocked("socket connect")
    socket.socket.connect_ex = _blocked("socket connect")
    socket.create_connection = _blocked("socket create_connection")
    socket.getaddrinfo = _blocked("DNS lookup")
    sqlalchemy.create_engine = _blocked("sqlalchemy create_engine")
    sqlalchemy.engine.create_engine = _blocked("sqlalchemy create_engine")
    sqlalchemy.pool.Pool.connect = _blocked("database connection")
    sqlalchemy.engine.Engine.connect = _blocked("database connection")


def describe(dag) -> dict:
    tasks = {}
    for t in sorted(dag.tasks, key=lambda t: t.task_id):
        tasks[t.task_id] = {
            "operator": type(t).__name__ if not hasattr(t, "operator_class") else
            getattr(t.operator_class, "__name__", str(t.operator_class)),
            "mapped": type(t).__name__ in ("MappedOperator", "DecoratedMappedOperator")
            or hasattr(t, "expand_input")
            or t.get_closest_mapped_task_group() is not None,  # in a mapped task group
            "pool": t.pool,
            "upstream": sorted(t.upstream_task_ids),
            "outlets": [{"name": a.name, "uri": a.uri} for a in (t.outlets or [])],
            "owner": t.owner,
            "retries": t.retries,
        }
    schedule = dag.schedule
    assets = []
    if schedule is not None and not isinstance(schedule, str):
        assets = sorted(_asset_names(schedule))
    return {
        "schedule": schedule if schedule is None or isinstance(schedule, str) else type(schedule).__name__,
        "timetable": type(dag.timetable).__name__,
        "schedule_assets": assets,
        "tags": sorted(dag.tags),
        "owner": dag.owner,
        "has_doc_md": bool(dag.doc_md and dag.doc_md.strip()),
        "params": sorted(dag.params.keys()),
        "tasks": tasks,
        "edges": sorted([up, t] for t, info in tasks.items() for up in info["upstream"]),
    }


def main(passes: list[str]) -> None:
    import os

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins"))
    from airflow.dag_processing.dagbag import DagBag  # Airflow's own import may touch config

    block_io()
    for spec in passes:
        folder, runtime = spec.rsplit(":", 1)
        folder = str(Path(folder).resolve())
        if folder not in sys.path:
            sys.path.insert(0, folder)
        os.environ["AIRFLOW__MULTIPLT__RUNTIME"] = runtime
        VIOLATIONS.clear()
        bag = DagBag(folder)
        out = {
            "folder": folder,
            "runtime": runtime,
            "import_errors": {Path(k).name: v for k, v in bag.import_errors.items()},
            "violations": list(VIOLATIONS),
            "files": sorted({Path(d.fileloc).name for d in bag.dags.values()}),
            "dags": {dag_id: describe(dag) for dag_id, dag in sorted(bag.dags.items())},
        }
        print("PARSED-DAGS " + json.dumps(out, sort_keys=True), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
