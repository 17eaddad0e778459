"""Storage URIs: ``file:///abs/path``, bare local paths, and ``s3://bucket/key``.

Everything else (``http://``, ``gs://``, ``s3://`` without a bucket, ...) is refused with one
clear error naming the URI, before any I/O happens. So is a bare path that reads as a mistyped
URI (``s3:/bucket/x``, ``s3//bucket/x``, ``file:/tmp/x``; see `mistyped`), which would otherwise
name a folder below the current one, and a URI or path that starts or ends with whitespace
(``"out "``), which would otherwise name a file or folder ending in a space (an output with such
a `/`-separated part is refused by `outputs.check_out`).
"""

from __future__ import annotations

import dataclasses
import os
import re
import urllib.parse

from multiplt.errors import MultipltError


class NotFound(MultipltError):
    """The object or file a URI names does not exist (its bucket or folder may)."""


S3_KEY_MAX_BYTES = 1024  # S3's limit on an object key, in UTF-8 bytes
# S3 bucket naming rules (the subset MinIO and AWS agree on): 3-63 chars, lower case, digits,
# dots and dashes, starting and ending with a letter or digit.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# URI schemes someone may mean (storage ones and others multiplt names): `s3:bucket/x` and
# `s3//bucket/x` are mistyped URIs; `s3/x` (a folder named s3) stays a local path.
KNOWN_SCHEMES = ("s3", "s3a", "s3n", "file", "gs", "gcs", "hf", "http", "https", "ftp", "az", "abfs",
                 "abfss", "wasb", "wasbs", "hdfs")
_COLON_SLASH = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):/+(.*)$", re.S)  # x:/..., x://// is handled by _SCHEME
_KNOWN_COLON = re.compile(r"^(" + "|".join(KNOWN_SCHEMES) + r"):/*(.*)$", re.S | re.I)
_KNOWN_SLASHES = re.compile(r"^(" + "|".join(KNOWN_SCHEMES) + r")//+(.*)$", re.S | re.I)


def mistyped(path: str) -> str | None:
    """The URI a bare path (one without `scheme://`) most likely meant, when it reads as a
    mistyped URI; None for an ordinary relative or absolute path. The rule: the first segment is
    `WORD:` followed by `/` (`s3:/b/x`, `file:/tmp/x`, `foo:/x`), or a known scheme with a colon
    (`s3:b/x`), or a known scheme followed by `//` (`s3//b/x`). Names with a colon elsewhere
    (`runs/a:b`, `2024-01-01T10:00`, `run:1`) and folders named like a scheme (`s3/x`) are paths."""
    if _SCHEME.match(path):
        return None
    match = _COLON_SLASH.match(path) or _KNOWN_COLON.match(path) or _KNOWN_SLASHES.match(path)
    if not match:
        return None
    scheme, rest = match.group(1).lower(), match.group(2).lstrip("/")
    if scheme == "hf":  # Hub names are written bare (org/name), not as hf:// URIs
        return rest
    return f"file:///{rest}" if scheme == "file" else f"{scheme}://{rest}"


def local_name_hint(value: str, what: str = "folder") -> str:
    """The hint after a `mistyped` value: how to name a local `what` (folder, file) that is really
    called so. `./` alone is refused where a DAG takes the value (its local paths must be
    absolute), so both spellings are given."""
    return f"a local {what} of that name: write it as ./{value} or as an absolute path"


def padded(uri: str) -> str | None:
    """The URI itself, or its first `/`-separated part, when it starts or ends with whitespace
    (`"out "`, `"out /x.json"`); else None. Such a name is almost always a quoting slip, and as
    an output it would make a file or folder whose name ends in a space. `parse` refuses a whole
    value so padded; `outputs.check_out` refuses an output with such a part too (before `join`
    puts the space in the middle: `out /x`). Names found by listings are not checked: an input
    folder may hold them."""
    if uri != uri.strip():
        return uri
    return next((part for part in uri.split("/") if part != part.strip()), None)


def padded_message(uri: str, part: str) -> str:
    what = "it" if part == uri else f"its part {part!r}"
    return (f"bad storage URI {uri!r}: {what} starts or ends with whitespace (remove it; names "
            f"that start or end with whitespace are not supported)")


@dataclasses.dataclass(frozen=True)
class Location:
    """A parsed URI: either a local `path` or an S3 `bucket` + `key`."""

    uri: str
    scheme: str  # "file" or "s3"
    path: str = ""  # local absolute path (file)
    bucket: str = ""  # s3
    key: str = ""  # s3 (no leading slash; "" is the bucket root)

    @property
    def is_local(self) -> bool:
        return self.scheme == "file"


def parse(uri) -> Location:
    """Parse `uri` (str or os.PathLike) or raise MultipltError naming it."""
    if isinstance(uri, os.PathLike):
        uri = os.fspath(uri)
    if not isinstance(uri, str) or not uri.strip():
        raise MultipltError(f"bad storage URI {uri!r}: expected file://PATH, a local path or s3://BUCKET/KEY")
    if uri != uri.strip():  # a whole value typed with a space; parts: padded(), for outputs
        raise MultipltError(padded_message(uri, uri))
    match = _SCHEME.match(uri)
    if not match:  # a bare local path
        meant = mistyped(uri)
        if meant is not None:
            raise MultipltError(f"bad storage URI {uri!r}: a mistyped URI, not a local path (did you mean "
                                f"{meant!r}? {local_name_hint(uri)})")
        return Location(uri, "file", path=os.path.abspath(os.path.expanduser(uri)))
    scheme = match.group(1).lower()
    if scheme == "file":
        parsed = urllib.parse.urlsplit(uri)
        if parsed.netloc not in ("", "localhost"):
            raise MultipltError(f"bad storage URI {uri!r}: file:// URIs name no host (use file:///abs/path)")
        path = urllib.parse.unquote(parsed.path)
        if not path:
            raise MultipltError(f"bad storage URI {uri!r}: no path after file://")
        return Location(uri, "file", path=os.path.abspath(path))
    if scheme == "s3":
        rest = uri[len(match.group(0)):]
        bucket, _, key = rest.partition("/")
        if not bucket:
            raise MultipltError(f"bad storage URI {uri!r}: no bucket after s3://")
        if not _BUCKET.match(bucket) or ".." in bucket:
            raise MultipltError(f"bad storage URI {uri!r}: {bucket!r} is not a valid S3 bucket name")
        _check_key(uri, key)
        return Location(uri, "s3", bucket=bucket, key=key)
    raise MultipltError(f"bad storage URI {uri!r}: unsupported scheme {scheme!r} (supported: file://, s3://, local paths)")


def _check_key(uri: str, key: str) -> None:
    """Refuse an S3 key that names no object the way a user means it. S3 keeps `.` and `..`
    segments literally (`a/../x` is an object named so, not `x`), while many tools and browsers
    normalise them away, so the same URI would name different objects; an empty segment (`//`)
    is the same trap. A key over S3's 1,024-byte limit fails only at the first write, after the
    work is done. Local paths are left alone: `..` there is ordinary and resolved by the OS."""
    if "//" in key:
        raise MultipltError(f"bad storage URI {uri!r}: empty path segment in the key")
    dots = next((part for part in key.split("/") if part in (".", "..")), None)
    if dots is not None:
        raise MultipltError(f"bad storage URI {uri!r}: a {dots!r} segment in the key "
                            f"(S3 keeps it literally; write the key without it)")
    size = len(key.encode("utf-8", "surrogatepass"))
    if size > S3_KEY_MAX_BYTES:
        raise MultipltError(f"bad storage URI {uri!r}: the key is {size} bytes "
                            f"(S3 allows at most {S3_KEY_MAX_BYTES})")


def join(uri, *parts: str) -> str:
    """`uri` with `parts` appended, one `/` between each (works for every scheme)."""
    out = os.fspath(uri)
    for part in parts:
        part = str(part)
        if not part:
            continue
        out = out.rstrip("/") + "/" + part.lstrip("/")
    return out


def basename(uri) -> str:
    """The last path segment (`a.json.gz` of `s3://b/x/a.json.gz`); a trailing `/` is ignored."""
    return os.fspath(uri).rstrip("/").rsplit("/", 1)[-1]


def local_path(uri) -> str | None:
    """The filesystem path of a local URI; None for remote ones."""
    loc = parse(uri)
    return loc.path if loc.is_local else None
