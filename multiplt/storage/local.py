"""Local files behind the storage API (implements `base.Store`). Writes are atomic: a temp file in the same folder, fsync,
then ``os.replace``, so a reader sees the old content or the new, never a torn file. Temp names
start with a dot and end in TEMP_SUFFIX, and listings skip them. A file's version tag (ETag) is
its inode, size and modification time: every write is a new file renamed into place."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import uuid

from multiplt.errors import MultipltError
from multiplt.storage.base import Changed, ObjectInfo
from multiplt.storage.uri import Location, NotFound, join

LOG = logging.getLogger("multiplt.storage")
TEMP_SUFFIX = ".multiplt-tmp"
_CHUNK = 8 << 20

# Files from mkstemp are 0600; give written files the usual permissions instead. Read the umask
# once at import (os.umask is process-wide, so never toggle it from worker threads).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def is_temp(name: str) -> bool:
    return name.endswith(TEMP_SUFFIX)


def file_above(path: str) -> str | None:
    """The nearest existing path above the local `path` when it is a file, not a folder (so
    `path` cannot be created); None when it is a folder."""
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    return None if os.path.isdir(parent) else parent


def _not_found(loc: Location) -> MultipltError:
    return NotFound(f"no such file: {loc.uri}")


def read_bytes(loc: Location) -> bytes:
    return read_versioned(loc)[0]


def cannot_write(path: str, exc: OSError) -> MultipltError:
    """The one error for a local write the system refused (read-only file system, permission
    denied, disk full, name too long...)."""
    return MultipltError(f"cannot write {path}: {exc.strerror or exc}")


class _Writes:
    """The temp file as AtomicFile hands it out: a failed write is `cannot_write`."""

    def __init__(self, file, path: str):
        self._file, self._path = file, path

    def write(self, data) -> int:
        try:
            return self._file.write(data)
        except OSError as exc:
            raise cannot_write(self._path, exc) from None

    def __getattr__(self, name):
        return getattr(self._file, name)


class AtomicFile:
    """A temp file beside `path` that replaces `path` on commit and vanishes on failure. Any
    OSError of the writing (creating folders, the temp file, writing, flushing, renaming) is
    one MultipltError naming `path`, and the old content of `path` stays."""

    def __init__(self, path: str, durable: bool = True):
        self.path = path
        self.durable = durable
        folder = os.path.dirname(path) or "."
        if os.path.isdir(path):
            raise MultipltError(f"cannot write {path}: it is a folder")
        try:
            os.makedirs(folder, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise MultipltError(f"cannot write {path}: a parent of it is a file") from None
        except OSError as exc:
            raise cannot_write(path, exc) from None
        try:
            fd, self.tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=TEMP_SUFFIX, dir=folder)
        except OSError as exc:
            raise cannot_write(path, exc) from None
        self.file = os.fdopen(fd, "wb")

    def __enter__(self):
        return _Writes(self.file, self.path)

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.file.flush()
                if self.durable:
                    os.fsync(self.file.fileno())
            self.file.close()
            if exc_type is None:
                os.chmod(self.tmp, 0o666 & ~_UMASK)
                os.replace(self.tmp, self.path)
        except OSError as error:
            raise cannot_write(self.path, error) from None
        finally:
            if not self.file.closed:  # close() itself failed (flushing the buffer)
                try:
                    self.file.close()
                except OSError:
                    pass
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:  # renamed into place
                pass
            except OSError as error:
                LOG.warning("cannot remove the temp file %s: %s", self.tmp, error.strerror)


def write_bytes(loc: Location, data: bytes, durable: bool = True) -> None:
    with AtomicFile(loc.path, durable) as f:
        f.write(data)


def _etag(st: os.stat_result) -> str:
    return f"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"


def read_versioned(loc: Location) -> tuple[bytes, str]:
    """The file's bytes and the version tag of the file they were read from."""
    try:
        with open(loc.path, "rb") as f:
            return f.read(), _etag(os.fstat(f.fileno()))
    except (FileNotFoundError, NotADirectoryError):  # missing, or below a file: no such file
        raise _not_found(loc) from None
    except IsADirectoryError:
        raise MultipltError(f"{loc.uri} is a folder, not a file") from None
    except PermissionError:
        raise MultipltError(f"cannot read {loc.uri}: permission denied") from None


def _open(loc: Location):
    """The file at `loc` opened for reading; read_versioned's errors for what cannot be."""
    try:
        return open(loc.path, "rb")
    except (FileNotFoundError, NotADirectoryError):
        raise _not_found(loc) from None
    except IsADirectoryError:
        raise MultipltError(f"{loc.uri} is a folder, not a file") from None
    except PermissionError:
        raise MultipltError(f"cannot read {loc.uri}: permission denied") from None


def read_range(loc: Location, start: int, length: int, etag: str | None) -> tuple[bytes, int, str]:
    """`length` bytes from `start` (negative: from the end) of the file that holds version
    `etag` (Changed when the path names another file now), with its size and version tag."""
    with _open(loc) as f:
        st = os.fstat(f.fileno())
        if etag is not None and _etag(st) != etag:
            raise Changed(f"{loc.uri} changed while it was being read; read it again")
        begin = max(0, st.st_size + start) if start < 0 else start
        end = min(st.st_size, begin + max(0, length))
        parts = []
        while begin < end:  # pread returns at most about 2 GiB at once
            part = os.pread(f.fileno(), end - begin, begin)
            if not part:
                break
            parts.append(part)
            begin += len(part)
        return b"".join(parts), st.st_size, _etag(st)


def open_stream(loc: Location):
    """The open file (a rewrite while it is read replaces the path, not this file)."""
    return _open(loc)


def write_bytes_if(loc: Location, data: bytes, etag: str | None) -> bool:
    """Compare-and-swap among writers that use it. With an `etag`: an flock on the file that
    holds that version (every such writer locks the file it replaces), then the write only if the
    path still names that file. Without: the new file is hard-linked into place, which fails
    when a file is already there (a file system without hard links is a `cannot_write` error)."""
    import fcntl

    path = loc.path
    if os.path.isdir(path):
        raise MultipltError(f"cannot write {loc.uri}: it is a folder")
    if etag is None:
        staged = os.path.join(os.path.dirname(path) or ".",
                              f".{os.path.basename(path)}.{uuid.uuid4().hex}{TEMP_SUFFIX}")
        with AtomicFile(staged) as f:
            f.write(data)
        try:
            os.link(staged, path)
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            raise cannot_write(path, exc) from None
        finally:
            os.unlink(staged)
    try:
        current = open(path, "rb")
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise cannot_write(path, exc) from None
    with current:
        fcntl.flock(current, fcntl.LOCK_EX)  # released by the close, after the rename
        try:
            still = _etag(os.fstat(current.fileno())) == etag == _etag(os.stat(path))
        except FileNotFoundError:
            return False
        if still:
            write_bytes(loc, data)
        return still


def put_file(loc: Location, src_path: str) -> None:
    """Copy a local file to `loc` atomically, streaming."""
    with open(src_path, "rb") as src, AtomicFile(loc.path) as dst:
        shutil.copyfileobj(src, dst, _CHUNK)


def get_file(loc: Location, dst_path: str) -> None:
    """Copy `loc` to a local file path atomically, streaming."""
    try:
        src = open(loc.path, "rb")
    except FileNotFoundError:
        raise _not_found(loc) from None
    with src, AtomicFile(dst_path) as dst:
        shutil.copyfileobj(src, dst, _CHUNK)


def copy(src: Location, dst: Location) -> None:
    get_file(src, dst.path)


def exists(loc: Location) -> bool:
    return os.path.exists(loc.path)


def is_file(loc: Location) -> bool:
    return os.path.isfile(loc.path)


def ls(loc: Location, recursive: bool) -> list[str]:
    if not os.path.isdir(loc.path):
        return []
    out = []
    if recursive:
        for root, dirs, files in os.walk(loc.path):
            dirs.sort()
            rel = os.path.relpath(root, loc.path)
            for name in files:
                if not is_temp(name):
                    out.append(join(loc.uri, name) if rel == "." else join(loc.uri, rel.replace(os.sep, "/"), name))
    else:
        with os.scandir(loc.path) as entries:
            for entry in entries:
                if entry.is_dir():
                    out.append(join(loc.uri, entry.name) + "/")
                elif not is_temp(entry.name):
                    out.append(join(loc.uri, entry.name))
    return sorted(out)


def listing(loc: Location) -> list[ObjectInfo]:
    out = []
    for uri in ls(loc, recursive=True):
        st = os.stat(os.path.join(loc.path, *uri[len(loc.uri.rstrip("/")) + 1:].split("/")))
        # every write is a new file renamed into place: a new inode, even within one mtime tick
        out.append(ObjectInfo(uri, st.st_size, _etag(st)))
    return out


def delete(loc: Location, recursive: bool) -> None:
    if os.path.isdir(loc.path) and not os.path.islink(loc.path):
        if not recursive:
            raise MultipltError(f"{loc.uri} is a folder; pass recursive=True to delete it")
        shutil.rmtree(loc.path)
    else:
        try:
            os.unlink(loc.path)
        except FileNotFoundError:
            pass


#: how often a lock with a timeout tries again (flock itself cannot wait a bounded time)
LOCK_POLL_S = 0.05


class FolderLock:
    """`with FolderLock(path) as fd:` an exclusive flock on the local folder `path` (made if
    missing) for the block; `fd` is the locked descriptor of the folder itself (no lock file
    appears in it), or None where the folder cannot be made or opened (the caller's first
    write names the problem) or the file system refuses the lock (some NFS mounts). The kernel
    drops the lock however the process ends. `timeout`: None waits as long as it takes; else
    at most that many seconds (0: not at all), then BlockingIOError (another process, or
    another descriptor of this one, holds it).

    Whatever ends the wait or the block, a KeyboardInterrupt included (a Ctrl-C is raised at
    the first Python instruction after flock returns), the descriptor is closed: a lock taken
    and then left open would make this process's next lock of the folder wait for itself. The
    lock is taken inside __enter__ (never in a generator, whose suspended frame would keep it
    until collected), so no instruction lies between it and the `with` that releases it."""

    def __init__(self, path: str, timeout: float | None = None):
        self.path, self.timeout = path, timeout
        self.fd: int | None = None

    def __enter__(self) -> int | None:
        try:
            os.makedirs(self.path, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            _flock(self.fd, self.timeout, self.path)
        except BaseException as exc:
            fd, self.fd = self.fd, None
            os.close(fd)
            if isinstance(exc, OSError) and not isinstance(exc, BlockingIOError):
                LOG.debug("no lock on %s (%s)", self.path, exc)
                return None
            raise
        return self.fd

    def __exit__(self, *exc) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)  # drops the lock


def _flock(fd: int, timeout: float | None, path: str) -> None:
    import fcntl

    if timeout is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BlockingIOError(exc.errno, f"{path} is locked by another writer") from None
            time.sleep(min(LOCK_POLL_S, left))
