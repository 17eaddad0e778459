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


class MissingSetup(PlatformError):
    """A PlatformError that a retry on the same machine cannot mend: a program or package the
    sandbox or a language needs is not installed, or a language's known program ends with the
    wrong status (its test library is missing). Still exit 3 where it is found while executing;
    commands that check before sampling (testgen, translate) report it as bad setup (exit 2)."""
