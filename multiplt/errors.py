"""The one exception type users see: a clear message, a non-zero exit, nothing half-written."""


class MultipltError(Exception):
    """A problem with the user's input or environment, reported as one line by the CLI."""

    exit_code = 2


def type_word(kind: type) -> str:
    """How an error message names a value type ("an integer", "a number", ...)."""
    return {int: "an integer", float: "a number", str: "a string"}.get(kind, kind.__name__)


class PlatformError(MultipltError):
    """A failure of the platform itself (missing runtime, broken sandbox): retried, never scored."""

    exit_code = 3
