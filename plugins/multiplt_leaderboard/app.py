"""The leaderboard's FastAPI app, mounted by Airflow's API server at /leaderboard.

Plugin apps get no authentication from Airflow, so every route checks the caller itself: the
Airflow JWT from an ``Authorization: Bearer`` header or the UI's ``_token`` session cookie,
validated by the configured auth manager. Anonymous callers get 401 on the data endpoints and a
redirect to the Airflow login (coming back here) on the pages: the leaderboard (`/`, one
benchmark at a time: `?benchmark=`, `?k=`), a run's
per-problem results (`/run?run_id=`) and the datasets under the data root (`/datasets`).

What cannot be shown (an unreadable or malformed results store, a run not recorded or whose
folder is gone) is one line: on the pages (shown in the Airflow UI's frame) a small HTML page
with the line escaped, on the data endpoints JSON `{"detail": line}`; both with the status. A bad
or missing query parameter (`?k=abc`) is the same: a 422 HTML page naming the parameter and its
value on the pages, FastAPI's own JSON 422 on the data endpoints.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from multiplt_leaderboard import board, datasets_page, page, plot, run_page

LOG = logging.getLogger("multiplt.leaderboard")

app = FastAPI(title="MultiPL-T leaderboard", docs_url=None, redoc_url=None, openapi_url=None)


class Failure(Exception):
    """What a route cannot show: one line for the caller, with its HTTP status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _is_page(request: Request) -> bool:
    """Whether the request's route is a page (answers HTML) rather than a data endpoint."""
    return getattr(request.scope.get("route"), "response_class", None) is HTMLResponse


@app.exception_handler(Failure)
async def _failure(request: Request, exc: Failure) -> Response:
    """A page (a route answering HTML) gets a small HTML page, a data endpoint JSON."""
    if _is_page(request):
        return HTMLResponse(page.error_page(exc.message), status_code=exc.status)
    return JSONResponse({"detail": exc.message}, status_code=exc.status)


def _shown_value(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def validation_line(errors) -> str:
    """FastAPI's validation errors as one line: each names the parameter and the value given,
    e.g. "bad query parameter k='abc': Input should be a valid integer, ...", or
    "missing query parameter run_id"."""
    parts = []
    for error in errors:
        where, *path = [str(part) for part in error.get("loc", ())] or ["request"]
        name = ".".join(path) or where
        if error.get("type") == "missing":
            parts.append(f"missing {where} parameter {name}")
        else:
            parts.append(f"bad {where} parameter {name}={_shown_value(error.get('input'))}: "
                         f"{error.get('msg', 'invalid')}")
    return "; ".join(parts).replace("\n", " ") or "invalid request"


@app.exception_handler(RequestValidationError)
async def _invalid(request: Request, exc: RequestValidationError) -> Response:
    """A bad or missing query parameter: on a page the HTML error page (422), on a data
    endpoint FastAPI's own JSON 422."""
    if _is_page(request):
        return HTMLResponse(page.error_page(validation_line(exc.errors())), status_code=422)
    return await request_validation_exception_handler(request, exc)


def _token(request: Request) -> str | None:
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.cookies.get(COOKIE_NAME_JWT_TOKEN)


async def authenticated_user(request: Request):
    """The signed-in Airflow user, or HTTPException 401 (no or bad token) / 403 (no access)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    token = _token(request)
    try:
        user = await resolve_user_from_token(token)
    except HTTPException as exc:
        raise HTTPException(401, f"Not authenticated: {exc.detail}",
                            headers={"WWW-Authenticate": "Bearer"}) from None
    if not get_auth_manager().is_authorized_view(access_view=AccessView.WEBSITE, user=user):
        raise HTTPException(403, "Forbidden")
    return user


def _store_uri() -> str:
    from multiplt_airflow import settings

    return settings.load().results_store


def _rows() -> list[dict]:
    from multiplt.errors import MultipltError

    try:
        return board.load_rows(_store_uri())
    except MultipltError as exc:
        LOG.error("leaderboard: %s", exc)
        raise Failure(500, str(exc)) from None


@app.get("/api/results")
async def results(request: Request, k: int | None = None, benchmark: str | None = None) -> JSONResponse:
    """Every recorded pass@k row (optionally one k, one benchmark), as JSON, with the store's
    benchmarks (the leaderboard's default first)."""
    await authenticated_user(request)
    rows = _rows()
    found = board.benchmarks(rows)
    if benchmark is not None:
        rows = board.of_benchmark(rows, benchmark)
    if k is not None:
        rows = [r for r in rows if r["k"] == k]
    return JSONResponse({"rows": rows, "k_values": board.k_values(rows), "benchmarks": found})


@app.get("/plot.svg")
async def plot_svg(request: Request, k: int = 1, benchmark: str | None = None) -> Response:
    """pass@k by epoch on one benchmark (by default the leaderboard's default one)."""
    await authenticated_user(request)
    svg = plot.render_svg(board.epoch_series(_rows(), k, benchmark), k)
    return Response(svg, media_type="image/svg+xml")


async def _page_user(request: Request):
    """The signed-in user, or a redirect to the Airflow login that comes back to this page."""
    try:
        return await authenticated_user(request)
    except HTTPException as exc:
        if exc.status_code != 401:
            raise Failure(exc.status_code, str(exc.detail)) from None
        return RedirectResponse("/auth/login?" + urlencode({"next": str(request.url)}), status_code=307)


def _name(user) -> str:
    return getattr(user, "get_name", lambda: "?")()


@app.get("/", response_class=HTMLResponse)
async def leaderboard(request: Request, k: int = 1, benchmark: str | None = None):
    """One benchmark at a time (`?benchmark=`, by default the one with the most rows)."""
    user = await _page_user(request)
    if isinstance(user, Response):
        return user
    rows = _rows()
    found = board.benchmarks(rows)
    if benchmark is None:
        benchmark = board.default_benchmark(rows)
    languages, entries = board.board(rows, k, benchmark)
    svg = plot.render_svg(board.epoch_series(rows, 1, benchmark), 1)
    ks = board.k_values(board.of_benchmark(rows, benchmark)) or [1]
    html = page.render_page(languages, entries, ks, k, svg, _name(user), "the results store",
                            benchmarks=found, benchmark=benchmark)
    return HTMLResponse(html)


@app.get("/run", response_class=HTMLResponse)
async def run(request: Request, run_id: str):
    """One recorded run's per-problem results, read from its run folder."""
    user = await _page_user(request)
    if isinstance(user, Response):
        return user
    from multiplt.errors import MultipltError
    from multiplt.results import problems

    try:
        rows = problems.run_rows(_store_uri(), run_id)
        per_problem = problems.per_problem(rows[0]["run_uri"])
    except MultipltError as exc:
        LOG.error("leaderboard run %s: %s", run_id, exc)
        raise Failure(404, str(exc)) from None
    return HTMLResponse(run_page.render_page(rows, per_problem, _name(user)))


def _data_root() -> str:
    from multiplt_airflow import settings

    return settings.load().data_uri


def _asset_events() -> list[dict]:
    """The asset events of the dataset-making DAGs, newest first (from Airflow's database)."""
    from sqlalchemy import select

    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from multiplt.results.datasets import KINDS

    dag_ids = [dag_id for _, dag_id in KINDS.values()]
    query = (select(AssetEvent.source_dag_id, AssetEvent.source_run_id, AssetEvent.extra,
                    AssetEvent.timestamp, AssetModel.uri)
             .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
             .where(AssetEvent.source_dag_id.in_(dag_ids))
             .order_by(AssetEvent.timestamp.desc()).limit(2000))
    with create_session() as session:
        return [{"dag_id": d, "run_id": r, "extra": e, "timestamp": t.isoformat() if t else None, "uri": u}
                for d, r, e, t, u in session.execute(query)]


def _datasets():
    from multiplt.errors import MultipltError
    from multiplt.results import dataset_runs, datasets

    root = _data_root()
    try:
        found = datasets.discover(root)
    except MultipltError as exc:
        LOG.error("datasets: %s", exc)
        raise Failure(500, str(exc)) from None
    try:
        events, events_error = _asset_events(), None
    except Exception as exc:  # noqa: BLE001 - the page still shows the datasets without run links
        LOG.exception("datasets: cannot read asset events")
        events, events_error = None, f"{type(exc).__name__}: {exc}"
    runs = [None if events is None else dataset_runs.runs_for(d, events) for d in found]
    return root, found, runs, events_error


@app.get("/api/datasets")
async def datasets_json(request: Request) -> JSONResponse:
    """Every dataset under the data root with its funnel steps, size, model and runs, as JSON."""
    import dataclasses

    await authenticated_user(request)
    root, found, runs, _ = _datasets()
    return JSONResponse({"root": root, "datasets": [
        {**dataclasses.asdict(d), "key": d.key, "title": d.title, "runs": r}
        for d, r in zip(found, runs)]}, headers={"Cache-Control": "no-store"})


@app.get("/datasets", response_class=HTMLResponse)
async def datasets_view(request: Request):
    user = await _page_user(request)
    if isinstance(user, Response):
        return user
    root, found, runs, events_error = _datasets()
    return HTMLResponse(datasets_page.render_page(found, runs, _name(user), root, events_error))
