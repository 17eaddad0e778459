"""`[multiplt] evaluate_schedule` is checked when the settings are read, like every other key: a
value multiplt_evaluate's DAG would refuse as its `schedule` fails settings.load with a message
naming the key and the value, where it was an import error naming neither (croniter's "Exactly 5,
6 or 7 columns ..."); every value settings.load takes is one the DAG parses with."""

from __future__ import annotations

import pytest

from multiplt_airflow import settings

ACCEPTED = ["", "  ", "@weekly", " @daily ", "@hourly", "@monthly", "@quarterly", "@yearly",
            "@annually", "@once", "0 3 * * 1", "*/15 * * * *", "0 0 * * MON-FRI", "0 0 * * * 0"]
REFUSED = {"weekly": "Exactly 5, 6 or 7 columns", "@fortnightly": "Exactly 5, 6 or 7 columns",
           "0 0 * * 8": "out of range", "a b c d e": "is not acceptable",
           "@continuous": "max_active_runs 1 only"}


@pytest.mark.parametrize("value", ACCEPTED)
def test_a_schedule_airflow_takes_is_accepted(value, monkeypatch):
    monkeypatch.setenv("AIRFLOW__MULTIPLT__EVALUATE_SCHEDULE", value)
    assert settings.load().evaluate_schedule == value


@pytest.mark.parametrize("value", sorted(REFUSED))
def test_a_schedule_airflow_refuses_names_the_key_and_the_value(value, monkeypatch):
    monkeypatch.setenv("AIRFLOW__MULTIPLT__EVALUATE_SCHEDULE", value)
    with pytest.raises(ValueError) as refused:
        settings.load()
    message = str(refused.value)
    assert message.startswith("[multiplt] evaluate_schedule must be a cron expression (0 3 * * 1), "
                              "a preset (@hourly, @daily, @weekly, @monthly, @quarterly, "
                              f"@yearly), @once or empty, not {value!r}: "), message
    assert REFUSED[value] in message


@pytest.mark.parametrize("value", ["@weekly", "@once", "0 3 * * 1", "0 0 * * * 0", ""])
def test_the_dag_parses_with_every_accepted_kind_of_schedule(value, monkeypatch):
    """What settings.load accepts is what Airflow accepts for multiplt_evaluate (no import
    error): the check must not refuse a schedule the DAG would run on."""
    from tests.support.airflow import load_dag

    monkeypatch.setenv("AIRFLOW__MULTIPLT__EVALUATE_SCHEDULE", value)
    dag = load_dag("multiplt_evaluate")
    kind = type(dag.timetable).__name__
    assert kind == {"": "NullTimetable", "@once": "OnceTimetable"}.get(value, "CronTriggerTimetable")
