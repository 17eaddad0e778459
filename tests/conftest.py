"""Shared test setup. Fixture modules live in tests/plugins/ (one per service: S3 server, test Hub,
tiny model, embedded Airflow, ...) and are all loaded here."""

import pathlib

pytest_plugins = sorted(
    f"tests.plugins.{p.stem}"
    for p in (pathlib.Path(__file__).parent / "plugins").glob("*.py")
    if p.stem != "__init__"
)
