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


@pytest.mark.parametrize("typed", ["out ", " out", "o3/x.jsonl ", "out\n", "\tout",
                                   "s3://bucket/x.json ", "file:///tmp/x "])
def test_names_starting_or_ending_with_whitespace_are_refused(typed):
    """`--store "r.parquet "` would write a file whose name ends in a space: refused, naming the
    URI, before any I/O."""
    with pytest.raises(MultipltError, match=re.escape(f"bad storage URI {typed!r}: it starts or ends "
                                                      "with whitespace")):
        uri.parse(typed)


@pytest.mark.parametrize("typed,part", [
    ("gsp ", "gsp "), ("gsp /_multiplt_run.yaml", "gsp "), ("o/ x/y", " x"), ("s3://bucket/a /b", "a ")])
def test_an_output_with_a_padded_part_is_refused(typed, part):
    """`--out "gsp "` would make a folder whose name ends in a space, and `join` puts the space
    in the middle (`gsp /x`), where parse does not look: check_out looks at every part."""
    from multiplt.storage.outputs import check_out

    what = "it" if part == typed else f"its part {part!r}"
    with pytest.raises(MultipltError, match=re.escape(f"--out: bad storage URI {typed!r}: {what} starts "
                                                      "or ends with whitespace")):
        check_out(typed)


def test_a_listed_name_with_a_padded_part_is_read():
    """Names found in an input folder are not the user's typing: a folder `data /` in a corpus
    source stays readable."""
    assert uri.parse("src/data /part.jsonl").path.endswith("src/data /part.jsonl")


@pytest.mark.parametrize("path", ["my runs/out", "a b.jsonl", "s3://bucket/my key/x.json",
                                  "file:///tmp/a%20/x"])
def test_inner_spaces_are_kept(path):
    assert uri.parse(path).uri == path


@pytest.mark.parametrize("typed,segment", [
    ("s3://bucket/../x.jsonl", "'..'"), ("s3://bucket/a/./b", "'.'"), ("s3://bucket/a/..", "'..'"),
    ("s3://bucket/./", "'.'")])
def test_s3_keys_with_dot_segments_are_refused(typed, segment):
    """S3 keeps `.`/`..` literally, so such a key names an object other than the user means."""
    with pytest.raises(MultipltError, match=re.escape(f"a {segment} segment in the key")) as info:
        uri.parse(typed)
    assert repr(typed) in str(info.value) and "\n" not in str(info.value)


def test_s3_keys_with_dots_inside_names_are_kept():
    for typed in ("s3://bucket/a.b/..c/x..jsonl", "s3://bucket/.hidden/x", "s3://bucket/x/"):
        assert uri.parse(typed).key == typed[len("s3://bucket/"):]


def test_s3_keys_over_1024_bytes_are_refused():
    """The limit counts UTF-8 bytes: 512 two-byte characters fit, one more byte does not."""
    assert uri.parse("s3://bucket/" + "é" * 512).key == "é" * 512
    long = "s3://bucket/" + "é" * 512 + "x"
    with pytest.raises(MultipltError, match="the key is 1025 bytes") as info:
        uri.parse(long)
    assert repr(long) in str(info.value)


def test_local_paths_with_dot_segments_stay_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a").mkdir()
    assert uri.parse("a/../x.jsonl").path == str(tmp_path / "x.jsonl")
    assert uri.parse(f"file://{tmp_path}/a/../x").path == str(tmp_path / "x")
