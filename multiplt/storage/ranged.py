"""A seekable, read-only file object over one version of a stored file, read in byte ranges.

`RangedFile` (made by `storage.open_ranged`) reads through a backend's `read_range` (on S3 a
GET with a Range header): only the ranges asked for, never the whole object unless the whole
object is read. A small read is rounded up to `block_size` bytes ahead of it, kept in a cache of
at most `cache_bytes` (least recently used dropped first), so a sequential scan, or a few
sequential scans interleaved (pyarrow reading the columns of a row group), costs one request
per block, not one per read. The first request (made when the file is opened, so a missing
file is an error at once) learns the size and version (ETag) of the file; every later request
asks for that same version, so a file rewritten while it is read is an error naming it, never
a mix of two versions.
"""

from __future__ import annotations

import collections
import io
from typing import Callable

from multiplt.errors import PlatformError

#: bytes read ahead of a small read
BLOCK_SIZE = 1 << 20
#: the most segments the cache keeps, whatever their bytes
MAX_SEGMENTS = 64

#: fetch(start, length, etag) -> (data, size of the file, its etag): a backend's read_range
Fetch = Callable[[int, int, "str | None"], "tuple[bytes, int, str]"]


class RangedFile(io.RawIOBase):
    """read / seek / tell / readinto over the file at `uri`, fetched by `fetch`. `tail` > 0
    makes the first request the last `tail` bytes (a parquet footer), else the first block.
    `requests` and `fetched` count the requests made and the bytes they returned."""

    def __init__(self, uri: str, fetch: Fetch, block_size: int = BLOCK_SIZE,
                 cache_bytes: int | None = None, tail: int = 0):
        super().__init__()
        if block_size < 1 or tail < 0:
            raise ValueError(f"block_size must be positive and tail not negative, got {block_size}, {tail}")
        self.uri, self._fetch, self.block_size = uri, fetch, block_size
        self.cache_bytes = max(block_size, tail, 4 * block_size if cache_bytes is None else cache_bytes)
        self._segments: collections.OrderedDict[int, bytes] = collections.OrderedDict()  # start -> bytes
        self._cached = 0
        self._pos = 0
        self.requests = self.fetched = 0
        self.etag: str | None = None
        first = -tail if tail else 0
        data, self.size, self.etag = self._get(first, tail or block_size)
        self._keep(max(0, self.size - len(data)) if tail else 0, data)

    # ---- io.RawIOBase --------------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._checkClosed()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checkClosed()
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}.get(whence)
        if base is None:
            raise ValueError(f"invalid whence ({whence})")
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer) -> int:
        data = self.read(len(memoryview(buffer)))
        memoryview(buffer).cast("B")[:len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        return self.read(-1)

    def read(self, size: int | None = -1) -> bytes:
        self._checkClosed()
        pos = self._pos
        end = self.size if size is None or size < 0 else min(self.size, pos + size)
        parts = []
        while pos < end:
            piece = self._cached_at(pos, end)
            if piece is None:
                stop = min(self.size, max(end, pos + self.block_size))
                following = min((s for s in self._segments if s > pos), default=None)
                if following is not None:
                    stop = min(stop, following)  # up to what is cached already
                data, _size, _etag = self._get(pos, stop - pos)
                if len(data) != stop - pos:
                    raise PlatformError(f"{self.uri}: asked for {stop - pos} bytes at {pos}, the store "
                                        f"returned {len(data)}")
                self._keep(pos, data)
                piece = data[:end - pos]
            parts.append(piece)
            pos += len(piece)
        self._pos = pos
        return b"".join(parts)

    def close(self) -> None:
        self._segments.clear()
        self._cached = 0
        super().close()

    # ---- the cache -----------------------------------------------------------------------------
    def _get(self, start: int, length: int) -> tuple[bytes, int, str]:
        data, size, etag = self._fetch(start, length, self.etag)
        self.requests += 1
        self.fetched += len(data)
        return data, size, etag

    def _cached_at(self, pos: int, end: int) -> bytes | None:
        """The cached bytes from `pos` (up to `end`), or None when none are cached at `pos`."""
        for start, data in self._segments.items():
            if start <= pos < start + len(data):
                self._segments.move_to_end(start)
                return data[pos - start:end - start]
        return None

    def _keep(self, start: int, data: bytes) -> None:
        if not data or len(data) > self.cache_bytes:
            return
        self._segments[start] = data
        self._cached += len(data)
        while self._cached > self.cache_bytes or len(self._segments) > MAX_SEGMENTS:
            _start, dropped = self._segments.popitem(last=False)
            self._cached -= len(dropped)
