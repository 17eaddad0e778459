"""Helpers of the DAG files in this folder: the Params schemas and the argv plans of each run.

Nothing here imports Airflow or does I/O, so the plans are unit-tested as plain functions
(tests/dags/test_pipeline_plans.py), and a DAG file stays a page of wiring.
"""
