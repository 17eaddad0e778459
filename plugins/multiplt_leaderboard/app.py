"""The leaderboard's FastAPI app, mounted by Airflow's API server at /leaderboard.

Plugin apps get no authentication from Airflow, so every route checks the caller itself: the
Airflow JWT from an ``Authorization: Bearer`` header or the UI's ``_token`` session cookie,
validated by the configured auth manager. Anonymous callers get 401 on the data endpoint and a
redirect to the Airflow login (coming back here) on the page.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from multiplt_leaderboard import board, page, plot

LOG = logging.getLogger("multiplt.leaderboard")

app = FastAPI(title="MultiPL-T leaderboard", docs_url=None, redoc_url=None, openapi_url=None)


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
        raise HTTPException(500, str(exc)) from None


@app.get("/api/results")
async def results(request: Request, k: int | None = None) -> JSONResponse:
    """Every recorded pass@k row (optionally one k), as JSON."""
    await authenticated_user(request)
    rows = _rows()
    if k is not None:
        rows = [r for r in rows if r["k"] == k]
    return JSONResponse({"rows": rows, "k_values": board.k_values(rows)})


@app.get("/plot.svg")
async def plot_svg(request: Request, k: int = 1) -> Response:
    await authenticated_user(request)
    svg = plot.render_svg(board.epoch_series(_rows(), k), k)
    return Response(svg, media_type="image/svg+xml")


@app.get("/", response_class=HTMLResponse)
async def leaderboard(request: Request, k: int = 1):
    try:
        user = await authenticated_user(request)
    except HTTPException as exc:
        if exc.status_code != 401:
            raise
        return RedirectResponse("/auth/login?" + urlencode({"next": str(request.url)}), status_code=307)
    rows = _rows()
    languages, entries = board.board(rows, k)
    svg = plot.render_svg(board.epoch_series(rows, 1), 1)
    name = getattr(user, "get_name", lambda: "?")()
    html = page.render_page(languages, entries, board.k_values(rows) or [1], k, svg, name,
                            "the results store")
    return HTMLResponse(html)
