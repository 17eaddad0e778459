"""One wording for the settings a run recorded under --out and this run do not share, as
`multiplt train`, `corpus build` and `testgen` name them when they refuse to go on with an --out
of another run: `key: A there, B now` (values as JSON, None as `none`), `key: not recorded there,
B now` (a setting the recorded run has no value of), `key: A there, no such setting now`."""

from __future__ import annotations

import json


def shown(value) -> str:
    return "none" if value is None else json.dumps(value)


def differences(saved: dict, now: dict, keys) -> list[str]:
    """The wording of each setting of `keys` (in that order) between `saved` (the recorded run's)
    and `now` (this run's); the caller says which keys differ."""
    worded = []
    for key in keys:
        if key not in now:
            worded.append(f"{key}: {shown(saved[key])} there, no such setting now")
        elif key not in saved:
            worded.append(f"{key}: not recorded there, {shown(now[key])} now")
        else:
            worded.append(f"{key}: {shown(saved[key])} there, {shown(now[key])} now")
    return worded
