"""The embedded deployment's SQLite connections wait 30 s for another writer's lock (pysqlite's
default is 5 s, after which an API call made while tasks run failed with HTTP 500 "Database
error"): the rendered airflow.cfg names the connect args, and the engines Airflow builds from it
(sync and async) carry them. A deployment on another database gets none."""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys

from multiplt_airflow import database, embedded

# run by a fresh Python with AIRFLOW_HOME/AIRFLOW_CONFIG set: what SQLite says each engine waits
PROBE = """
import asyncio, json
from sqlalchemy import text
from airflow import settings

with settings.engine.connect() as c:
    sync = c.execute(text("PRAGMA busy_timeout")).scalar()

async def probe():
    async with settings.async_engine.connect() as c:
        value = (await c.execute(text("PRAGMA busy_timeout"))).scalar()
    await settings.async_engine.dispose()
    return value

print(json.dumps({"sync": sync, "async": asyncio.run(probe())}))
"""


def _render(tmp_path):
    home, data = tmp_path / "home", tmp_path / "data"
    home.mkdir()
    (data / "airflow").mkdir(parents=True)
    return home, embedded.render_config(home, 18234, data)


def test_the_rendered_config_names_the_connect_args(tmp_path):
    _, cfg_path = _render(tmp_path)
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(cfg_path)
    assert cfg["database"]["sql_alchemy_connect_args"] == "multiplt_airflow.database.CONNECT_ARGS"
    assert cfg["database"]["sql_alchemy_connect_args_async"] == "multiplt_airflow.database.CONNECT_ARGS_ASYNC"


def test_airflows_engines_on_the_embedded_config_wait_30_s_for_a_lock(tmp_path):
    home, cfg_path = _render(tmp_path)
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW_CONFIG": str(cfg_path)}
    env = {k: v for k, v in env.items() if not k.startswith("AIRFLOW__DATABASE__")}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"sync": 30000, "async": 30000}


def test_another_database_gets_no_sqlite_arguments():
    assert database.connect_args("sqlite:////d/airflow.db") == {"timeout": 30}
    assert database.connect_args("sqlite+aiosqlite:////d/airflow.db") == {"timeout": 30}
    for url in ("postgresql+psycopg2://u:p@postgres:5432/airflow", "postgresql+asyncpg://h/a", "", None):
        assert database.connect_args(url) == {}
