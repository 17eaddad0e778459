"""Shared test setup. Fixture modules live in tests/support/ (one per service: S3 server, test Hub,
tiny model, embedded Airflow, ...) and are all loaded here."""

import pathlib

pytest_plugins = sorted(
    f"tests.support.{p.stem}"
    for p in (pathlib.Path(__file__).parent / "support").glob("*.py")
    if p.stem != "__init__"
)
