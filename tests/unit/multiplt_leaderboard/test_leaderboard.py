"""The leaderboard plugin without a running Airflow: table shaping, the SVG plot, HTML escaping,
and that anonymous or forged requests never see the page or its data."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))

from multiplt_leaderboard import board, page, plot  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"


def row(lang, epoch, estimate, k=1, model="out/rkt", experiment="multiplt", created="2026-01-01"):
    return {"model": model, "revision": f"{lang}-{experiment}-epoch{epoch}", "experiment": experiment,
            "lang": lang, "epoch": epoch, "k": k, "estimate": estimate, "num_problems": 4, "n": 2,
            "temperature": 0.2, "benchmark": "b", "created_at": created, "run_id": f"{lang}{epoch}"}


ROWS = [row("rkt", 0, 0.1, model="base"), row("rkt", 1, 0.2), row("rkt", 2, 0.3),
        row("lua", 1, 0.4, model="out/lua"), row("lua", 1, 0.45, model="out/lua", created="2026-02-01"),
        row("rkt", 1, 0.6, k=10)]


def test_board_has_a_cell_per_language_and_the_latest_recording_wins():
    languages, entries = board.board(ROWS, k=1)
    assert languages == ["lua", "rkt"]
    lua = [e for e in entries if e["model"] == "out/lua"]
    assert len(lua) == 1 and lua[0]["cells"] == {"lua": {"estimate": 0.45, "num_problems": 4, "n": 2}}
    assert [(e["model"], e["epoch"]) for e in entries] == [("base", 0), ("out/lua", 1), ("out/rkt", 1),
                                                           ("out/rkt", 2)]
    assert board.k_values(ROWS) == [1, 10]
    _, tens = board.board(ROWS, k=10)
    assert [e["cells"]["rkt"]["estimate"] for e in tens] == [0.6]


def test_epoch_series_per_language_and_experiment():
    series = board.epoch_series(ROWS, k=1)
    assert series == {"lua (multiplt)": [(1, 0.45)], "rkt (multiplt)": [(0, 0.1), (1, 0.2), (2, 0.3)]}


def test_plot_is_valid_svg_with_a_line_per_series():
    svg = ET.fromstring(plot.render_svg(board.epoch_series(ROWS), k=1))
    groups = svg.findall(f"{SVG}g")
    assert [g.get("data-label") for g in groups] == ["lua (multiplt)", "rkt (multiplt)"]
    rkt = groups[1]
    points = rkt.find(f"{SVG}polyline").get("points").split()
    ys = [float(p.split(",")[1]) for p in points]
    assert len(points) == 3 and ys[0] > ys[1] > ys[2]  # rising pass@1 is drawn upwards
    assert len(rkt.findall(f"{SVG}circle")) == 3
    empty = ET.fromstring(plot.render_svg({}, k=1))
    assert "no results recorded yet" in "".join(empty.itertext())


def test_page_escapes_what_the_store_holds():
    hostile = [row("rkt", 1, 0.5, model="<script>alert(1)</script>", experiment="x")]
    languages, entries = board.board(hostile, 1)
    html = page.render_page(languages, entries, [1], 1, "<svg/>", "<b>user</b>", "store")
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "&lt;b&gt;user&lt;/b&gt;" in html
    assert 'data-value="0.5000">0.500</td>' in html


@pytest.fixture
def client():
    """The app mounted under /leaderboard, as Airflow's API server mounts plugin apps."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from multiplt_leaderboard.app import app

    root = FastAPI()
    root.mount("/leaderboard", app)
    return TestClient(root, base_url="http://127.0.0.1:8080")


def test_anonymous_requests_get_401_or_a_login_redirect(client):
    assert client.get("/leaderboard/api/results").status_code == 401
    assert client.get("/leaderboard/plot.svg").status_code == 401
    page_response = client.get("/leaderboard/?k=1", follow_redirects=False)
    assert page_response.status_code == 307
    assert page_response.headers["location"] == (
        "/auth/login?next=http%3A%2F%2F127.0.0.1%3A8080%2Fleaderboard%2F%3Fk%3D1")
