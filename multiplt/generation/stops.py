"""Stop strings: a completion ends right before the earliest occurrence of any stop string.

MultiPL-E's `stop_at_stop_token`: the stop string itself is excluded and the earliest position
wins, whichever stop string it belongs to (not the first string in the list that occurs).
"""

from __future__ import annotations


def stop_index(text: str, stops) -> int:
    """Index of the earliest stop string in `text`, or -1 when none occurs."""
    best = -1
    for stop in stops:
        if not stop:
            continue
        at = text.find(stop)
        if at != -1 and (best == -1 or at < best):
            best = at
    return best


def cut_at_stop(text: str, stops) -> str:
    """`text` up to (not including) its earliest stop string."""
    at = stop_index(text, stops)
    return text if at == -1 else text[:at]

