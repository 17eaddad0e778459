"""S3 (AWS, MinIO, any S3 API) behind the storage API (implements `base.Store`), through boto3
(imported lazily).

Endpoint, region and credentials come from the standard AWS environment (AWS_ENDPOINT_URL or
AWS_ENDPOINT_URL_S3, AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) or a named
profile (AWS_PROFILE), so the same code talks to AWS and to a MinIO in compose. Writes are atomic
on the server side: a single PUT, or a multipart upload that becomes visible only when completed.
`write_bytes_if` is S3's conditional write (a single PUT with If-Match/If-None-Match).

A stalled or unreachable endpoint fails a call within bounded time: a connection, and each block
of a request sent on it, waits at most CONNECT_TIMEOUT_S, each read of the answer at most
READ_TIMEOUT_S (set by MULTIPLT_S3_CONNECT_TIMEOUT / MULTIPLT_S3_READ_TIMEOUT), and a call makes
at most 6 attempts (AWS_MAX_ATTEMPTS, the standard AWS setting, overrides it).
"""

from __future__ import annotations

import io
import os
import threading

from multiplt.errors import MultipltError, PlatformError
from multiplt.storage.base import Changed, ConditionalWriteUnsupported, ObjectInfo
from multiplt.storage.uri import Location, NotFound

# Objects above this size go up in parts (S3's minimum part size is 5 MiB).
MULTIPART_THRESHOLD = 8 << 20
MULTIPART_CHUNK = 8 << 20
# The largest object one PUT may carry (S3's limit), and so the largest conditional write.
MAX_SINGLE_PUT = 5 << 30
#: seconds to wait for a connection to the endpoint (botocore's default is 60), and for each
#: block of a request's body to be sent (urllib3 keeps the connect timeout on the socket while it
#: sends; botocore sends a body in blocks of 128 KiB or less, so 10 s cuts only an upload slower
#: than about 13 KB/s): a host that drops packets fails an attempt after this
CONNECT_TIMEOUT_S = 10.0
#: seconds each read of an answer may wait for data (botocore's default): a limit on a stall,
#: not on a request, so a download of any size is not cut by it; AWS answers slow requests
#: (CompleteMultipartUpload, CopyObject) well within it (it sends blanks while it works)
READ_TIMEOUT_S = 60.0
#: the environment variables that override them (seconds, a positive number)
TIMEOUT_ENV = {"MULTIPLT_S3_CONNECT_TIMEOUT": CONNECT_TIMEOUT_S, "MULTIPLT_S3_READ_TIMEOUT": READ_TIMEOUT_S}
#: retries of a failed call (botocore's `max_attempts`: retries, so 6 attempts in all), unless
#: the standard AWS setting AWS_MAX_ATTEMPTS (attempts in all) is in the environment
RETRIES = 5
_ENV_KEYS = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_REGION",
             "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE",
             "AWS_SHARED_CREDENTIALS_FILE", "AWS_MAX_ATTEMPTS", "MULTIPLT_S3_ADDRESSING_STYLE",
             *TIMEOUT_ENV)
_lock = threading.Lock()
_clients: dict[tuple, object] = {}


def client():
    """One boto3 S3 client per distinct AWS environment (clients are thread-safe; sessions not)."""
    key = tuple(os.environ.get(k) for k in _ENV_KEYS)
    with _lock:
        if key not in _clients:
            import boto3
            import botocore.config

            try:
                session = boto3.session.Session()
            except Exception as exc:  # e.g. botocore.exceptions.ProfileNotFound
                raise MultipltError(f"cannot load AWS settings: {exc}") from None
            # MinIO and other self-hosted endpoints are addressed by path (http://host/bucket/key);
            # AWS itself prefers virtual-hosted names.
            custom = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            style = os.environ.get("MULTIPLT_S3_ADDRESSING_STYLE") or ("path" if custom else "auto")
            retries = {"mode": "standard"}
            if not os.environ.get("AWS_MAX_ATTEMPTS"):
                retries["max_attempts"] = RETRIES
            config = botocore.config.Config(s3={"addressing_style": style}, retries=retries,
                                            connect_timeout=_seconds("MULTIPLT_S3_CONNECT_TIMEOUT"),
                                            read_timeout=_seconds("MULTIPLT_S3_READ_TIMEOUT"))
            _clients[key] = session.client("s3", config=config)
        return _clients[key]


def _seconds(name: str) -> float:
    """The timeout the environment variable `name` sets (TIMEOUT_ENV gives the default where it is
    unset or empty); MultipltError naming it for anything but a positive finite number."""
    from multiplt.env_setting import env_setting

    value = env_setting(name, float, lambda s: 0 < s < float("inf"), "a positive number of seconds")
    return TIMEOUT_ENV[name] if value is None else value


def _transfer_config():
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_CHUNK,
                          max_concurrency=4)


def _translate(exc: Exception, loc: Location, action: str) -> Exception:
    """A clear MultipltError for a boto3 failure (missing bucket/key, credentials, endpoint)."""
    import botocore.exceptions as bex

    if isinstance(exc, bex.ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code == "NoSuchBucket":
            return MultipltError(f"S3 bucket {loc.bucket!r} does not exist (while trying to {action} {loc.uri})")
        if code in ("NoSuchKey", "404", "NotFound"):
            return NotFound(f"no such object: {loc.uri}")
        if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled"):
            return MultipltError(f"access denied to {loc.uri} (while trying to {action}); check the AWS credentials")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"):
            return MultipltError(f"S3 rejected the credentials ({code}) for {loc.uri}; "
                                 "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE")
        return PlatformError(f"S3 error {code or '?'} while trying to {action} {loc.uri}: {exc}")
    if isinstance(exc, (bex.NoCredentialsError, bex.PartialCredentialsError)):
        return MultipltError(f"no AWS credentials to {action} {loc.uri}: set AWS_ACCESS_KEY_ID and "
                             "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE")
    if isinstance(exc, (bex.ConnectTimeoutError, bex.ReadTimeoutError)):
        return PlatformError(f"the S3 endpoint did not answer in time to {action} {loc.uri}: {exc} "
                             "(limits: MULTIPLT_S3_CONNECT_TIMEOUT, MULTIPLT_S3_READ_TIMEOUT)")
    if isinstance(exc, bex.EndpointConnectionError):
        return PlatformError(f"cannot reach the S3 endpoint to {action} {loc.uri}: {exc}")
    if isinstance(exc, bex.BotoCoreError):
        return PlatformError(f"S3 failure while trying to {action} {loc.uri}: {exc}")
    return exc


def _call(loc: Location, action: str, fn, *args, **kwargs):
    import botocore.exceptions as bex

    try:
        return fn(*args, **kwargs)
    except (bex.ClientError, bex.BotoCoreError) as exc:
        err = _translate(exc, loc, action)
        # HEAD answers a bare 404 for a missing bucket too: ask the bucket to tell them apart
        if isinstance(err, NotFound) and action != "check bucket":
            _check_bucket(loc)
        raise err from None


def _check_bucket(loc: Location) -> None:
    c = client()
    _call(loc, "check bucket", c.list_objects_v2, Bucket=loc.bucket, MaxKeys=1)


def _require_key(loc: Location) -> None:
    if not loc.key or loc.key.endswith("/"):
        raise MultipltError(f"{loc.uri} names a folder, not an object")


def read_bytes(loc: Location) -> bytes:
    _require_key(loc)
    c = client()
    response = _call(loc, "read", c.get_object, Bucket=loc.bucket, Key=loc.key)
    return _call(loc, "read", response["Body"].read)


def write_bytes(loc: Location, data: bytes, durable: bool = True) -> None:
    """An S3 write is durable once it returns, whatever `durable` says."""
    _require_key(loc)
    c = client()
    if len(data) <= MULTIPART_THRESHOLD:
        _call(loc, "write", c.put_object, Bucket=loc.bucket, Key=loc.key, Body=data)
    else:
        _call(loc, "write", c.upload_fileobj, io.BytesIO(data), loc.bucket, loc.key, Config=_transfer_config())


def read_versioned(loc: Location) -> tuple[bytes, str]:
    """The object's bytes and the ETag of that very version (one GET)."""
    _require_key(loc)
    c = client()
    response = _call(loc, "read", c.get_object, Bucket=loc.bucket, Key=loc.key)
    return _call(loc, "read", response["Body"].read), response["ETag"]


def _attempts() -> int:
    """The attempts a call makes in all (RETRIES + 1, or AWS_MAX_ATTEMPTS): also the reads of
    an answer's body in a row that may be cut short before it is given up."""
    return int(client().meta.config.retries.get("total_max_attempts", RETRIES + 1))


def _cut_short():
    """What reading an answer's body raises when the connection drops or stalls after the
    headers came (botocore retries a request, never the reading of its body)."""
    import botocore.exceptions as bex

    return bex.ReadTimeoutError, bex.ResponseStreamingError, bex.IncompleteReadError


def _get(loc: Location, etag: str | None, **kwargs) -> dict | None:
    """One GetObject of `loc` (If-Match: `etag` when given); None for 416 (a range at or past the
    end). A version other than `etag` (412, or a server that ignores If-Match) is Changed."""
    import botocore.exceptions as bex

    if etag is not None:
        kwargs["IfMatch"] = etag
    try:
        response = client().get_object(Bucket=loc.bucket, Key=loc.key, **kwargs)
    except bex.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "InvalidRange" or status == 416:
            return None
        if etag is not None and (code == "PreconditionFailed" or status == 412):
            raise _changed(loc) from None
        err = _translate(exc, loc, "read")
        if isinstance(err, NotFound):
            _check_bucket(loc)
        raise err from None
    except bex.BotoCoreError as exc:
        raise _translate(exc, loc, "read") from None
    if etag is not None and response.get("ETag") != etag:
        response["Body"].close()
        raise _changed(loc)
    return response


def _changed(loc: Location) -> Changed:
    return Changed(f"{loc.uri} changed while it was being read; read it again")


def read_range(loc: Location, start: int, length: int, etag: str | None) -> tuple[bytes, int, str]:
    """One GET with a Range header (and If-Match: `etag`), so only those bytes come. A body cut
    short is asked for again, up to the client's attempts in a row; a range past the end (416)
    is no bytes, with the size and ETag from a HEAD."""
    _require_key(loc)
    if length <= 0:
        return b"", *_head(loc, etag)
    wanted = f"bytes={start}" if start < 0 else f"bytes={start}-{start + length - 1}"
    attempts = _attempts()
    for attempt in range(attempts):
        response = _get(loc, etag, Range=wanted)
        if response is None:
            return b"", *_head(loc, etag)
        try:
            data = response["Body"].read()
            break
        except _cut_short() as exc:
            response["Body"].close()
            if attempt + 1 == attempts:
                raise _translate(exc, loc, "read") from None
    got = response.get("ContentRange")  # "bytes FIRST-LAST/SIZE"; none: the server sent it whole
    if got:
        size = int(got.rsplit("/", 1)[1])
    else:
        size = len(data)
        begin = max(0, size + start) if start < 0 else start
        data = data[begin:begin + length]
    return data[:length], size, response["ETag"]


def _head(loc: Location, etag: str | None) -> tuple[int, str]:
    """The size and ETag of the object (of version `etag`: another one is Changed)."""
    head = _call(loc, "read", client().head_object, Bucket=loc.bucket, Key=loc.key)
    if etag is not None and head["ETag"] != etag:
        raise _changed(loc)
    return head["ContentLength"], head["ETag"]


#: bytes the stream of `open_stream` reads from its body at a time
STREAM_BUFFER = 1 << 20


def open_stream(loc: Location):
    """One GET whose body is read as it is consumed (buffered, STREAM_BUFFER bytes at a time)."""
    _require_key(loc)
    return io.BufferedReader(_Body(loc), STREAM_BUFFER)


class _Body(io.RawIOBase):
    """An object's body, front to back. A body cut short (a dropped connection, a read past the
    read timeout) is asked for again from where it stopped, of the same version (Range and
    If-Match: a rewrite in between is Changed), up to the client's attempts in a row."""

    def __init__(self, loc: Location):
        super().__init__()
        self.loc, self._pos, self.etag, self.size, self._body = loc, 0, None, 0, None
        self._attempts = _attempts()
        self._body, self.size = self._open()

    def _open(self):
        if self._pos:
            response = _get(self.loc, self.etag, Range=f"bytes={self._pos}-")
        else:
            response = _get(self.loc, None)
        if response is None:  # 416 from byte _pos of the version whose size is past it
            raise PlatformError(f"{self.loc.uri} ended at byte {self._pos} of {self.size} while it was "
                                "being read")
        self.etag = response["ETag"]
        return response["Body"], self._pos + response["ContentLength"]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        self._checkClosed()
        view = memoryview(buffer).cast("B")
        failures = 0
        while self._body is not None and self._pos < self.size and len(view):
            try:
                data = self._body.read(min(len(view), self.size - self._pos))
            except _cut_short() as exc:
                self._body.close()
                self._body = None
                failures += 1
                if failures >= self._attempts:
                    raise _translate(exc, self.loc, "read") from None
                self._body, _size = self._open()
                continue
            view[:len(data)] = data
            self._pos += len(data)
            return len(data)
        return 0

    def close(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None
        super().close()


def write_bytes_if(loc: Location, data: bytes, etag: str | None) -> bool:
    """One PUT with If-Match: `etag` (If-None-Match: * when `etag` is None). False when the
    server refuses it because the object changed: 412 PreconditionFailed, 409 (AWS's
    ConditionalRequestConflict while another conditional write to the key is in flight), or 404
    (the object was deleted since it was read). A server that answers 501 NotImplemented raises
    ConditionalWriteUnsupported; one that ignores the headers cannot be told from one that honours
    them, and writes unconditionally. A single PUT, so at most MAX_SINGLE_PUT bytes (multipart
    uploads would need the condition on CompleteMultipartUpload)."""
    import botocore.exceptions as bex

    _require_key(loc)
    if len(data) > MAX_SINGLE_PUT:
        raise MultipltError(f"cannot write {loc.uri} conditionally: {len(data)} bytes is more than "
                            f"one S3 PUT takes ({MAX_SINGLE_PUT} bytes)")
    condition = {"IfNoneMatch": "*"} if etag is None else {"IfMatch": etag}
    c = client()
    try:
        c.put_object(Bucket=loc.bucket, Key=loc.key, Body=data, **condition)
        return True
    except bex.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
            return False
        if etag is not None and code in ("NoSuchKey", "404", "NotFound"):
            return False
        if code == "NotImplemented" or status == 501:
            raise ConditionalWriteUnsupported(
                f"the S3 server refused a conditional write to {loc.uri} ({code or status}): it does "
                "not support If-Match/If-None-Match on PUT") from None
        raise _translate(exc, loc, "write") from None
    except bex.BotoCoreError as exc:
        raise _translate(exc, loc, "write") from None


def put_file(loc: Location, src_path: str) -> None:
    _require_key(loc)
    c = client()
    _call(loc, "upload", c.upload_file, src_path, loc.bucket, loc.key, Config=_transfer_config())


def get_file(loc: Location, dst_path: str) -> None:
    """Download to `dst_path` atomically (a temp file beside it, then rename)."""
    from multiplt.storage import local

    _require_key(loc)
    c = client()
    with local.AtomicFile(dst_path) as f:
        _call(loc, "download", c.download_fileobj, loc.bucket, loc.key, f, Config=_transfer_config())


def copy(src: Location, dst: Location) -> None:
    """Server-side copy (multipart for large objects)."""
    _require_key(src)
    _require_key(dst)
    c = client()
    _call(src, "copy", c.head_object, Bucket=src.bucket, Key=src.key)
    _call(dst, "copy to", c.copy, {"Bucket": src.bucket, "Key": src.key}, dst.bucket, dst.key,
          Config=_transfer_config())


def exists(loc: Location) -> bool:
    """True for an object, or for a prefix with at least one object under it."""
    if is_file(loc):
        return True
    c = client()
    prefix = loc.key.rstrip("/") + "/" if loc.key else ""
    page = _call(loc, "check", c.list_objects_v2, Bucket=loc.bucket, Prefix=prefix, MaxKeys=1)
    return page.get("KeyCount", 0) > 0


def is_file(loc: Location) -> bool:
    """True when an object has the key `loc` itself (one HEAD request; none for a bucket or a
    key ending in "/"). A missing object, or a missing bucket, is False."""
    import botocore.exceptions as bex

    if not loc.key or loc.key.endswith("/"):
        return False
    try:
        client().head_object(Bucket=loc.bucket, Key=loc.key)
        return True
    except bex.ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code")) not in ("404", "NoSuchKey", "NotFound"):
            raise _translate(exc, loc, "check") from None
    except bex.BotoCoreError as exc:
        raise _translate(exc, loc, "check") from None
    return False


def _pages(loc: Location, recursive: bool):
    c = client()
    prefix = loc.key.rstrip("/") + "/" if loc.key else ""
    kwargs = {"Bucket": loc.bucket, "Prefix": prefix}
    if not recursive:
        kwargs["Delimiter"] = "/"
    paginator = c.get_paginator("list_objects_v2")
    iterator = iter(paginator.paginate(**kwargs))
    while True:
        page = _call(loc, "list", next, iterator, None)
        if page is None:
            return
        yield prefix, page


def ls(loc: Location, recursive: bool) -> list[str]:
    base = f"s3://{loc.bucket}/"
    out = []
    for _prefix, page in _pages(loc, recursive):
        out.extend(base + obj["Key"] for obj in page.get("Contents", []) if not obj["Key"].endswith("/"))
        out.extend(base + p["Prefix"] for p in page.get("CommonPrefixes", []))
    return sorted(out)


def listing(loc: Location) -> list[ObjectInfo]:
    base = f"s3://{loc.bucket}/"
    return sorted((ObjectInfo(base + obj["Key"], obj["Size"], obj["ETag"])
                   for _prefix, page in _pages(loc, True) for obj in page.get("Contents", [])
                   if not obj["Key"].endswith("/")), key=lambda o: o.uri)


def delete(loc: Location, recursive: bool) -> None:
    c = client()
    if not recursive and ls(loc, False):
        raise MultipltError(f"{loc.uri} is a folder; pass recursive=True to delete it")
    if loc.key and not loc.key.endswith("/"):
        _call(loc, "delete", c.delete_object, Bucket=loc.bucket, Key=loc.key)
    if not recursive:
        return
    for _prefix, page in _pages(loc, True):
        keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        if keys:
            _call(loc, "delete", c.delete_objects, Bucket=loc.bucket, Delete={"Objects": keys, "Quiet": True})
