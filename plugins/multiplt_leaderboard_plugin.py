"""The MultiPL-T leaderboard as an Airflow 3 plugin: a FastAPI app at /leaderboard and a
"Leaderboard" entry in the UI's navigation (see plugins/multiplt_leaderboard/)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from multiplt_leaderboard.app import app


class MultipltLeaderboardPlugin(AirflowPlugin):
    name = "multiplt_leaderboard"
    fastapi_apps = [{"app": app, "url_prefix": "/leaderboard", "name": "MultiPL-T leaderboard"}]
    external_views = [{"name": "Leaderboard", "href": "/leaderboard/", "destination": "nav",
                       "url_route": "leaderboard", "category": "browse"}]
