"""One reading of a setting given by an environment variable: unset or empty is unset; anything
the parser refuses or the rule rejects is one MultipltError naming the variable and the rule."""

from __future__ import annotations

import os
from typing import Callable, TypeVar

from multiplt.errors import MultipltError

T = TypeVar("T")


def env_setting(name: str, parse: Callable[[str], T], valid: Callable[[T], bool], rule: str) -> T | None:
    """The value of environment variable `name` as `parse` reads it (None where it is unset or
    empty); `{name} must be {rule}, got '...'` where it cannot be parsed or is not `valid`."""
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        value = parse(text)
    except ValueError:
        value = None
    if value is None or not valid(value):  # NaN fails every comparison of `valid`
        raise MultipltError(f"{name} must be {rule}, got {os.environ[name]!r}")
    return value
