"""Whether a folder's flock (storage.FolderLock) is free, as another process would find it."""

import fcntl
import os


def lock_is_free(path) -> bool:
    """Whether the folder's lock can be taken now (by another descriptor)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
