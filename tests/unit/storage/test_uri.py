"""URI parsing: a bare path that reads as a mistyped URI is refused, naming the URI it likely
meant; ordinary relative and absolute paths (colons inside, folders named like a scheme) are paths."""

import os
import re

import pytest

from multiplt.errors import MultipltError
from multiplt.storage import uri


@pytest.mark.parametrize("typed,meant", [
    ("s3:/bucket/x", "s3://bucket/x"), ("s3//bucket/x", "s3://bucket/x"), ("s3:bucket/x", "s3://bucket/x"),
    ("S3:/bucket/x", "s3://bucket/x"), ("file:/tmp/x", "file:///tmp/x"), ("file:tmp/x", "file:///tmp/x"),
    ("file//tmp/x", "file:///tmp/x"), ("gs:/b/x", "gs://b/x"), ("hf:org/name", "org/name"),
    ("https:/host/x", "https://host/x"), ("foo:/x", "foo://x")])
def test_mistyped_uris_are_refused_naming_the_likely_uri(typed, meant):
    assert uri.mistyped(typed) == meant
    with pytest.raises(MultipltError, match=re.escape(f"bad storage URI {typed!r}: a mistyped URI, not a local "
                                                      f"path (did you mean {meant!r}?")):
        uri.parse(typed)


@pytest.mark.parametrize("path", ["out", "s3/x", "s3", "./s3:/x", "runs/a:b", "run:1", "2024-01-01T10:00",
                                  "/tmp/s3:/x", "data.jsonl", "~/x", "./file:/x"])
def test_ordinary_paths_stay_paths(path):
    assert uri.mistyped(path) is None
    loc = uri.parse(path)
    assert loc.is_local and loc.path == os.path.abspath(os.path.expanduser(path))


def test_well_formed_uris_are_unchanged():
    assert uri.parse("s3://bucket/x").key == "x"
    assert uri.parse("file:///tmp/x").path == "/tmp/x"
    assert uri.mistyped("s3://bucket/x") is None and uri.mistyped("file:///tmp/x") is None
