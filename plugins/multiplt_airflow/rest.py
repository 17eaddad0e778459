"""A small client for Airflow 3's REST API v2 (standard library only).

Logs in through the simple auth manager's ``POST /auth/token``, then calls ``/api/v2/...`` with
the bearer token. Used by the embedded launcher, the main job and the tests.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request

TERMINAL_RUN_STATES = ("success", "failed")


class AirflowAPIError(RuntimeError):
    def __init__(self, method: str, url: str, status: int, body: str):
        super().__init__(f"{method} {url} -> HTTP {status}: {body[:2000]}")
        self.status = status
        self.body = body


class AirflowClient:
    def __init__(self, base_url: str, username: str, password: str, timeout: float = 30):
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.timeout = timeout
        self._token: str | None = None

    # ---- plumbing ---------------------------------------------------------------------------
    def _raw(self, method: str, path: str, body=None, headers=None) -> tuple[int, bytes]:
        url = self.base_url + path
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def token(self) -> str:
        if self._token is None:
            status, body = self._raw("POST", "/auth/token",
                                     {"username": self.username, "password": self.password})
            if status not in (200, 201):
                raise AirflowAPIError("POST", "/auth/token", status, body.decode(errors="replace"))
            self._token = json.loads(body)["access_token"]
        return self._token

    def request(self, method: str, path: str, body=None, ok=(200, 201, 204)):
        status, raw = self._raw(method, path, body, {"Authorization": f"Bearer {self.token()}"})
        if status == 401:  # token expired: log in again once
            self._token = None
            status, raw = self._raw(method, path, body, {"Authorization": f"Bearer {self.token()}"})
        if status not in ok:
            raise AirflowAPIError(method, path, status, raw.decode(errors="replace"))
        return json.loads(raw) if raw else None

    # ---- monitor ----------------------------------------------------------------------------
    def health(self) -> dict:
        status, raw = self._raw("GET", "/api/v2/monitor/health")
        if status != 200:
            raise OSError(f"health endpoint answered HTTP {status}")
        return json.loads(raw)

    # ---- pools ------------------------------------------------------------------------------
    def _put(self, collection: str, key: str, body: dict) -> None:
        """Update `key` in the collection (e.g. /api/v2/pools) where it exists, else create it.

        The PATCH comes first: a POST of an existing key is a 409 that the API server also logs
        as a "Serious error" (a unique constraint violation), on every rerun of a deployment."""
        path = f"{collection}/{urllib.parse.quote(key)}"
        try:
            self.request("PATCH", path, body)
            return
        except AirflowAPIError as exc:
            if exc.status != 404:
                raise
        try:
            self.request("POST", collection, body)
        except AirflowAPIError as exc:
            if exc.status != 409:  # created meanwhile by another caller: update it after all
                raise
            self.request("PATCH", path, body)

    def ensure_pool(self, name: str, slots: int, description: str = "",
                    include_deferred: bool = False) -> None:
        """Create the pool or set it as given. Airflow 3 validates a PATCH of a pool as a whole
        pool: `include_deferred` is required there (HTTP 422 without it), as are name and slots."""
        self._put("/api/v2/pools", name, {"name": name, "slots": slots, "description": description,
                                          "include_deferred": include_deferred})

    def set_variable(self, key: str, value: str, description: str = "") -> None:
        """Create or update an Airflow Variable."""
        self._put("/api/v2/variables", key, {"key": key, "value": value, "description": description})

    # ---- DAGs and runs ----------------------------------------------------------------------
    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> dict:
        """Wait until the dag-processor has parsed `dag_id`; fail on its import error."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.request("GET", f"/api/v2/dags/{dag_id}")
            except AirflowAPIError as exc:
                if exc.status != 404:
                    raise
            errors = self.request("GET", "/api/v2/importErrors")
            for err in errors.get("import_errors", []):
                if dag_id in err.get("stack_trace", "") or dag_id in err.get("filename", ""):
                    raise RuntimeError(f"DAG {dag_id} failed to import:\n{err['stack_trace']}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"DAG {dag_id} not parsed within {timeout:.0f}s "
                                   f"(import errors: {errors.get('import_errors')})")
            time.sleep(2)

    def set_paused(self, dag_id: str, paused: bool) -> None:
        """Pause or unpause a DAG (only unpaused DAGs get scheduled or Asset-triggered runs)."""
        self.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": paused})

    def trigger(self, dag_id: str, conf: dict | None = None, unpause: bool = True,
                run_id: str | None = None) -> str:
        """Trigger a run (unpausing the DAG first, so it is scheduled) and return its run id."""
        self.wait_for_dag(dag_id)
        if unpause:
            self.set_paused(dag_id, False)
        body: dict = {"conf": conf or {}, "logical_date": None}
        if run_id:
            body["dag_run_id"] = run_id
        return self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)["dag_run_id"]

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        data = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/"
                                   f"{urllib.parse.quote(run_id)}/taskInstances?limit=1000")
        return data["task_instances"]

    def task_log_content(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1,
                         map_index: int = -1):
        """A task try's whole log as the API gives it: a list of structured lines (dicts with
        "event" and the line's other fields), or one string from older log handlers."""
        data = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}"
                                   f"/taskInstances/{task_id}/logs/{try_number}"
                                   f"?map_index={map_index}&full_content=true")
        return data.get("content", "")
