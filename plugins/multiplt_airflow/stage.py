"""The stage-task factory: one call in a DAG file, either runtime underneath.

    from multiplt_airflow.stage import stage_task, stage_task_mapped

    build = stage_task("build_rkt", ["benchmark", "build", "--lang", "rkt", "--out", "{{ ... }}"])
    gen = stage_task("generate", ["generate", ...], gpu=True)
    execute = stage_task_mapped("execute", shard_argvs, sandbox=True)

``[multiplt] runtime`` (default ``local``) decides what comes back; DAG files never branch on it:

- local: ``MultipltStageOperator`` runs ``python -m multiplt <argv...>`` as a subprocess
  (``local_stage.py``);
- docker: ``DockerOperator``s running ``multiplt <argv...>`` in the worker image, or, for
  sandbox stages, in the sandbox image with networking off between networked stage-in and
  stage-out steps over a per-task volume (``docker_stage.py``; a ``TaskGroup`` of three tasks,
  ``<task_id>.stage_in``, ``.run`` and ``.stage_out``; from ``stage_task_mapped``, a mapped task
  group, one instance of the three per argv list, so a failed instance stops no other).

GPU stages default to the ``gpu`` pool. ``argv`` elements are Jinja templates. ``stage_task``'s
``argv`` may also be a value known only when the task runs: an ``XComArg``, or an argument of a
mapped task group (``@task_group`` ... ``.expand_kwargs``), which is each group instance's own
argv list (``dags/multiplt_evaluate.py``: one group per language of the run).
"""

from __future__ import annotations

from typing import Any, Sequence

from multiplt_airflow import settings as settings_mod


def _common_kwargs(gpu: bool, pool: str | None, operator_kwargs: dict[str, Any]) -> dict[str, Any]:
    kwargs = dict(operator_kwargs)
    if pool or gpu:
        kwargs["pool"] = pool or "gpu"
    return kwargs


def _resolved_at_run_time(argv: Any) -> bool:
    """An XComArg or a mapped task group's argument (both resolve against the task instance)."""
    return not isinstance(argv, (str, list, tuple)) and callable(getattr(argv, "resolve", None))


def _check_argv(task_id: str, argv: Any) -> None:
    if isinstance(argv, str):
        raise TypeError(f"stage_task {task_id!r}: argv must be a list of arguments, not a string "
                        f"({argv!r}); split it, e.g. {argv.split()!r}")


def stage_task(task_id: str, argv: Sequence[str], *, gpu: bool = False, sandbox: bool = False,
               cpus: float | None = None, memory: str | None = None, pool: str | None = None,
               **operator_kwargs):
    """A task (or, for docker sandbox stages, a task group) that runs ``multiplt <argv...>``.
    ``argv``: a list, or a reference resolved when the task runs (module docstring)."""
    _check_argv(task_id, argv)
    argv = argv if _resolved_at_run_time(argv) else list(argv)
    settings = settings_mod.load()
    kwargs = _common_kwargs(gpu, pool, operator_kwargs)
    if settings.runtime == "docker":
        from multiplt_airflow import docker_stage

        return docker_stage.build(task_id, argv, settings, gpu=gpu, sandbox=sandbox,
                                  cpus=cpus, memory=memory, mapped_argvs=None, **kwargs)
    from multiplt_airflow.local_stage import MultipltStageOperator

    return MultipltStageOperator(task_id=task_id, argv=argv, extra_env=_local_env(cpus), **kwargs)


def stage_task_mapped(task_id: str, argvs, *, gpu: bool = False, sandbox: bool = False,
                      cpus: float | None = None, memory: str | None = None,
                      pool: str | None = None, **operator_kwargs):
    """Dynamic task mapping: one task instance per argv list in ``argvs`` (an XComArg or a list);
    a docker sandbox stage: one instance of its three-step group per argv list (a mapped task
    group, so not inside another mapped task group)."""
    if isinstance(argvs, (list, tuple)):
        for argv in argvs:
            _check_argv(task_id, argv)
    settings = settings_mod.load()
    kwargs = _common_kwargs(gpu, pool, operator_kwargs)
    if settings.runtime == "docker":
        from multiplt_airflow import docker_stage

        return docker_stage.build(task_id, None, settings, gpu=gpu, sandbox=sandbox, cpus=cpus,
                                  memory=memory, mapped_argvs=argvs, **kwargs)
    from multiplt_airflow.local_stage import MultipltStageOperator

    return MultipltStageOperator.partial(task_id=task_id, extra_env=_local_env(cpus),
                                         **kwargs).expand(argv=argvs)


def _local_env(cpus: float | None) -> dict[str, str]:
    """Locally a CPU budget can only be advisory: cap the thread pools of the libraries."""
    if not cpus:
        return {}
    n = str(max(1, int(cpus)))
    return {"MULTIPLT_CPUS": n, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n}
