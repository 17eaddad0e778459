"""Shared test setup. Fixture modules live in tests/support/ (one per service: S3 server, test Hub,
tiny model, embedded Airflow, ...) and are all loaded here."""

import logging
import pathlib

import pytest

pytest_plugins = sorted(
    f"tests.support.{p.stem}"
    for p in (pathlib.Path(__file__).parent / "support").glob("*.py")
    if p.stem != "__init__"
)

# huggingface_hub's library logger gets a StreamHandler bound to sys.stderr as it is when the
# library is first imported: first imported inside a test that captures output (capsys), it keeps
# that test's stream, closed once the test ends, and every later Hub warning prints "--- Logging
# error ---" into another test's output. Imported here (its logging module: the package imports
# lazily), it binds the session's stream.
import huggingface_hub.utils.logging  # noqa: E402,F401


@pytest.fixture(autouse=True)
def _no_logging_into_closed_streams():
    """After each test, drop logging handlers whose stream is closed: a library that configures
    logging inside a test that captures output (Airflow's dictConfig puts a StreamHandler on the
    root logger) binds that test's stream, closed when it ends, and every later record at the
    handler's level would print "--- Logging error ---" into another test's stderr."""
    yield
    loggers = [logging.getLogger()] + [logger for logger in logging.root.manager.loggerDict.values()
                                       if isinstance(logger, logging.Logger)]
    for logger in loggers:
        for handler in list(logger.handlers):
            if getattr(getattr(handler, "stream", None), "closed", False):
                logger.removeHandler(handler)
