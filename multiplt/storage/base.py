"""The contract every storage backend implements: `Store`, a protocol over parsed `Location`s.

`multiplt.storage` (the public API: URIs, formats, copies between backends) picks the backend
of a URI's scheme and calls only these methods; `local.py` (``file://`` and bare paths) and
`s3.py` (``s3://``) implement them as module functions. Nothing outside `multiplt/storage/`
calls a backend directly.
"""

from __future__ import annotations

import dataclasses
from typing import BinaryIO, Protocol, runtime_checkable

from multiplt.errors import MultipltError, PlatformError
from multiplt.storage.uri import Location


class Changed(PlatformError):
    """A file read in parts (`read_range` with a version tag) was rewritten between them: read
    it again. A platform error (retried), not bad input: a rerun reads one version."""


class ConditionalWriteUnsupported(MultipltError):
    """The backend refused a conditional write (`write_bytes_if`) as not implemented: an
    S3-compatible server without If-Match/If-None-Match on PUT answers 501 NotImplemented."""


@dataclasses.dataclass(frozen=True)
class ObjectInfo:
    """One file/object of a listing: its full URI, size in bytes and ETag: a version tag that
    changes whenever the content is rewritten (S3's ETag; for a local file its inode, size and
    modification time, so large files are never hashed)."""

    uri: str
    size: int
    etag: str


@runtime_checkable
class Store(Protocol):
    """A storage backend. Writes are atomic (a reader sees the old content or the new, never a
    torn one); a missing file raises `uri.NotFound`, other bad input `MultipltError`."""

    def read_bytes(self, loc: Location) -> bytes:
        ...

    def write_bytes(self, loc: Location, data: bytes, durable: bool = True) -> None:
        """`durable=False` may skip flushing to disk (a backend whose writes are always durable
        ignores it)."""

    def read_versioned(self, loc: Location) -> tuple[bytes, str]:
        """The bytes at `loc` and their version tag (the ETag `listing` gives), read together."""

    def read_range(self, loc: Location, start: int, length: int, etag: str | None) -> tuple[bytes, int, str]:
        """Up to `length` bytes of the file at `loc` from byte `start` (negative: from `-start`
        bytes before its end), fewer only where the file ends first (none from its end or
        beyond), with the file's size and version tag: (bytes, size, etag). With an `etag`, only
        from that version: a file rewritten since is a `Changed` error naming it."""

    def open_stream(self, loc: Location) -> BinaryIO:
        """The file at `loc` as a binary stream read front to back as it is consumed (read(n)
        and iteration by lines; close it when done), without a copy of the whole file."""

    def write_bytes_if(self, loc: Location, data: bytes, etag: str | None) -> bool:
        """Compare-and-swap: write `data` atomically only if `loc` still holds version `etag`
        (None: only if nothing is there); False, writing nothing, when another write got there
        first. `ConditionalWriteUnsupported` when the backend cannot make the write conditional."""

    def put_file(self, loc: Location, src_path: str) -> None:
        """Copy the local file `src_path` to `loc`, streaming."""

    def get_file(self, loc: Location, dst_path: str) -> None:
        """Copy `loc` to the local file `dst_path` atomically, streaming."""

    def copy(self, src: Location, dst: Location) -> None:
        """Copy one file/object to another place of the same backend."""

    def exists(self, loc: Location) -> bool:
        """A file/object, or a folder (prefix) holding at least one."""

    def is_file(self, loc: Location) -> bool:
        """A file/object at `loc` itself, not a folder (prefix) (on S3 one HEAD request)."""

    def ls(self, loc: Location, recursive: bool) -> list[str]:
        """Sorted full URIs below the folder `loc` (see `multiplt.storage.ls`)."""

    def listing(self, loc: Location) -> list[ObjectInfo]:
        """Every file below the folder `loc` (recursively) with its size and ETag, sorted by URI."""

    def delete(self, loc: Location, recursive: bool) -> None:
        ...
