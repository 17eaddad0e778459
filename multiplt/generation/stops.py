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


class StopScanner:
    """Follows one sequence's text as pieces arrive (tokens from a stream) and says when a stop
    string has appeared, even one split across pieces. `text` is then the cut completion."""

    def __init__(self, stops):
        self.stops = [s for s in stops if s]
        self._buf = ""
        self.done = False

    def feed(self, piece: str) -> bool:
        """Add the next piece of text; True once the completion is finished."""
        if self.done:
            return True
        self._buf += piece
        # Only the tail could hold a stop string that was not there before this piece.
        window = max((len(s) for s in self.stops), default=0) + len(piece)
        start = max(0, len(self._buf) - window)
        at = stop_index(self._buf[start:], self.stops)
        if at != -1:
            # an earlier stop cannot exist (we checked after every piece); cut at this one
            self._buf = self._buf[: start + at]
            self.done = True
        return self.done

    @property
    def text(self) -> str:
        return self._buf
