"""Connect arguments of Airflow's metadata database in the embedded deployment.

The committed ``airflow.cfg`` names these dicts in ``[database] sql_alchemy_connect_args`` and
``sql_alchemy_connect_args_async`` (Airflow imports them by path when it creates its engines;
``plugins/`` is on ``sys.path`` by then). On SQLite, every component (api-server, scheduler,
dag-processor, triggerer) writes one file, and a writer waits for another's lock only for
pysqlite's default 5 s: a trigger or the audit-log insert of an API call made while tasks run
then fails ("database is locked", answered HTTP 500 "Database error"). Here a connection waits up
to BUSY_TIMEOUT_S.

Only a SQLite connection gets them: where ``sql_alchemy_conn`` is overridden with another database
(``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://...``, as docker/compose.yaml
does, without this file), the dicts are empty, since psycopg2 and asyncpg take no ``timeout``.
"""

from __future__ import annotations

import os
import sys

#: seconds a SQLite connection waits for another connection's lock before failing
BUSY_TIMEOUT_S = 30


def connect_args(url: str | None) -> dict:
    """The connect arguments of a SQLAlchemy URL: the busy timeout for SQLite, none otherwise."""
    return {"timeout": BUSY_TIMEOUT_S} if (url or "").startswith("sqlite") else {}


def _configured(key: str) -> str | None:
    """[database] `key` as Airflow has it: from its configuration when Airflow imports this
    module (configure_orm, with the configuration loaded; importing it from here would start
    Airflow, which imports this module again), else the environment's override, else None."""
    conf = getattr(sys.modules.get("airflow.configuration"), "conf", None)
    if conf is not None:
        return conf.get("database", key, fallback=None)
    return os.environ.get(f"AIRFLOW__DATABASE__{key.upper()}")


# None: imported outside Airflow with no override, so the committed airflow.cfg's SQLite
_SYNC_URL = _configured("sql_alchemy_conn") or "sqlite:"
_ASYNC_URL = _configured("sql_alchemy_conn_async") or _SYNC_URL
# Separate dicts: Airflow adds check_same_thread=False to the synchronous engine's.
CONNECT_ARGS = connect_args(_SYNC_URL)
CONNECT_ARGS_ASYNC = connect_args(_ASYNC_URL)
