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


def stop_window(stops) -> int:
    """How many tokens before the first new one an incremental stop check decodes again: a stop
    string of c characters is at most 4c UTF-8 bytes, so with a byte-level tokenizer (every token
    at least one byte) an occurrence that ends in a new token starts at most 4c tokens earlier.
    The window's text is a substring of the whole text (UTF-8 resynchronizes after a cut
    character), so the check never finds a stop the whole text lacks; a tokenizer that breaks
    this bound can only make a row end later, never change its text (cut_at_stop on the whole
    decode decides that)."""
    return 4 * max((len(s) for s in stops), default=0)
