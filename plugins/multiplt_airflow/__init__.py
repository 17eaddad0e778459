"""Airflow glue of the MultiPL-T Platform.

- ``multiplt_airflow.stage``: the stage-task factory (``stage_task``, ``stage_task_mapped``) that DAG
  files use; it returns a local subprocess operator or a DockerOperator, chosen by the
  ``[multiplt] runtime`` setting.
- ``multiplt_airflow.settings``: the ``[multiplt]`` section of the Airflow configuration.
- ``multiplt_airflow.embedded``: the embedded deployment (render ``airflow.cfg``, start
  api-server, scheduler, dag-processor and triggerer on 127.0.0.1, log in, trigger and wait).

This package holds no ``AirflowPlugin``; ``plugins/.airflowignore`` keeps Airflow's plugin loader
from importing its files as top-level modules. Airflow puts ``plugins/`` on ``sys.path``, so DAG
files import it as ``from multiplt_airflow.stage import stage_task``.
"""
