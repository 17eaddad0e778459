"""Checks of a command's output folder, made before any work and before any path is derived
from it:

- `check_out(out)`: the URI itself is valid (so `--out s3://` or `--out s3:/x` is an error that
  names that value, not `s3:/_work/config.json`), and it names no file (`--out A_FILE`; on S3 an
  existing object, found with one HEAD request) nor, locally, lies below one;
- `refuse_foreign(out, ours)`: a folder that already holds files must be one the command made
  (its marker, config or run record present); an empty folder, or one holding only empty
  folders (a runtime may create `--out` before the command runs), is new.
"""

from __future__ import annotations

import os

from multiplt.errors import MultipltError


def check_out(out, flag: str | None = "--out") -> None:
    """MultipltError naming `out` (and `flag`) when it is no storage URI, or is a file: locally a
    file, or a path below one; on S3 an existing object (one HEAD request). S3 would take keys
    below an object, leaving `x.jsonl` and `x.jsonl/...` side by side, which no local folder tree
    can hold. The keys above `out` on S3 are not asked (that would be a request per level), so
    an object there is not refused."""
    from multiplt import storage
    from multiplt.storage import local
    from multiplt.storage.uri import padded, padded_message, parse

    where = f"{flag} {out}" if flag else f"{out}"
    try:
        loc = parse(out)
        part = padded(os.fspath(out))
        if part is not None:
            raise MultipltError(padded_message(os.fspath(out), part))
    except MultipltError as exc:
        raise MultipltError(f"{flag}: {exc}" if flag else str(exc)) from None
    if storage.is_file(out):
        raise MultipltError(f"{where} is a file; give a folder")
    if not loc.is_local:
        return
    blocker = local.file_above(loc.path)
    if blocker is not None:
        raise MultipltError(f"{where}: {blocker} is a file, not a folder")


def first_file(folder) -> str | None:
    """The path, relative to `folder`, of one file below it (a shallowest one); None when it holds
    no file (missing, empty, or only empty subfolders). Lists one folder at a time, so a big
    folder is not listed whole."""
    from multiplt import storage

    base = os.fspath(folder).rstrip("/")
    level = [os.fspath(folder)]
    while level:
        below = []
        for uri in level:
            entries = storage.ls(uri)
            files = [e for e in entries if not e.endswith("/")]
            if files:
                return files[0][len(base) + 1:]
            below += [e for e in entries if e.endswith("/")]
        level = below
    return None


def refuse_foreign(out, ours, flag: str | None = "--out") -> None:
    """MultipltError when `out` holds files but is not a folder this command made. `ours()` says
    whether it is (its marker, config or run record is there; asked first, so a run's folder is
    not listed). Shards writing into one `out` at once stay accepted when each writes its marker
    before anything else."""
    if ours():
        return
    found = first_file(out)
    if found is None or ours():  # asked again: a shard beside this one may have begun meanwhile
        return
    where = f"{flag} {out}" if flag else f"{out}"
    raise MultipltError(f"{where} holds files this command did not write (e.g. {found}); use an "
                        f"empty or new folder")
