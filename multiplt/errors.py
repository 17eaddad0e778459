"""The one exception type users see: a clear message, a non-zero exit, nothing half-written."""


class MultipltError(Exception):
    """A problem with the user's input or environment, reported as one line by the CLI."""

    exit_code = 2


class PlatformError(MultipltError):
    """A failure of the platform itself (missing runtime, broken sandbox): retried, never scored."""

    exit_code = 3
