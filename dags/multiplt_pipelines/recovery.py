"""How a multiplt_evaluate run that failed recovers when its failed tasks are cleared (pure
functions; the DAG's tasks ask Airflow for the states).

Execute is mapped over the shards of the entries whose generate had succeeded when
`shard_commands` ran. Airflow's "Clear -> only failed" (UI, REST `only_failed`) reruns the failed
and upstream_failed tasks only: an entry whose generate failed and now succeeds was never planned
into execute, and `shard_commands` and execute (successes) are not run again, so nothing would
ever execute that entry. `late_shard_commands` (all_success on every generate: upstream_failed,
and so cleared with them, whenever one failed) plans those shards when it runs again, and
`execute_late` runs them. `announce_recovered` announces what was recorded after
`announce_results` had announced the run (it runs after `all_recorded`, all_success: so it is
cleared with a failed `all_recorded`).
"""

from __future__ import annotations


def late_lanes(entries: list[dict], lanes: list[list[str]] | None) -> list[list[str]]:
    """The execute command lines of every entry none of whose shards is in `lanes` (the shards
    `shard_commands` planned), in entry then shard order: what `execute_late` is mapped over, once
    every generate succeeded. [] in a run whose generates all succeeded the first time."""
    planned = lanes or []
    return [argv for entry in entries if not any(argv in planned for argv in entry["execute"])
            for argv in entry["execute"]]


def with_late_states(states: dict, lanes: list[list[str]], pairs) -> dict:
    """`states` (chain.task_states) with each execute_late task's instances added to its execute
    task's, at map index len(lanes) + its own: so chain.not_done and chain.evaluation_results,
    given lanes + late lanes and the execute stage's task ids, follow an entry's shards wherever
    they ran. `pairs`: (execute task id, execute_late task id), one per step of the stage (a
    docker sandbox stage has three)."""
    merged = dict(states)
    for execute, late in pairs:
        merged[execute] = {**states.get(execute, {}),
                           **{len(lanes) + k: state for k, state in states.get(late, {}).items()}}
    return merged


def unannounced(recorded: list[dict], announced: dict | None) -> list[dict]:
    """The recorded runs (chain.evaluation_results) that `announced` (announce_results' return
    value: its event's extra, or None when it was skipped) does not name."""
    named = {(run["lang"], run["run"]) for run in (announced or {}).get("runs") or []}
    return [run for run in recorded if (run["lang"], run["run"]) not in named]
