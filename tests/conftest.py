"""Shared test setup. Fixture modules live in tests/support/ (one per service: S3 server, test Hub,
tiny model, embedded Airflow, ...) and are all loaded here."""

import logging
import pathlib
import sys

import pytest

pytest_plugins = sorted(
    f"tests.support.{p.stem}"
    for p in (pathlib.Path(__file__).parent / "support").glob("*.py")
    if p.stem != "__init__"
)


@pytest.fixture(autouse=True)
def _no_logging_into_closed_streams():
    """After each test, point logging handlers whose stream is closed at the session's stderr: a
    library that configures logging inside a test that captures output (Airflow's dictConfig
    puts a StreamHandler on the root logger; huggingface_hub puts one on its own logger when
    first imported) binds that test's stream, closed when it ends, and every later record at the
    handler's level would print "--- Logging error ---" into another test's stderr. The handler
    stays (multiplt's own root handler leaves a record a library's handler prints to it). Not
    importing huggingface_hub here instead: that would freeze its constants before tests set
    HF_HUB_OFFLINE or HF_HOME."""
    yield
    loggers = [logging.getLogger()] + [logger for logger in logging.root.manager.loggerDict.values()
                                       if isinstance(logger, logging.Logger)]
    for logger in loggers:
        for handler in logger.handlers:
            if getattr(getattr(handler, "stream", None), "closed", False):
                with handler.lock:  # not setStream: it flushes the closed stream first
                    handler.stream = sys.stderr
