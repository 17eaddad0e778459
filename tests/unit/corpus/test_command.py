"""`multiplt corpus` commands: build flags checked before any document is read, a mistyped
--source, and a merge run before its dedup."""

import pytest

from multiplt import cli
from multiplt.corpus import extract


def test_typecheck_batch_below_1_is_refused_before_reading(tmp_path, monkeypatch, capsys):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "m.py").write_text('def f(x):\n    """d"""\n    return x * 2 + 1\n')

    def never(doc):
        raise AssertionError(f"{doc.origin} was read")
    monkeypatch.setattr(extract, "extract", never)
    out = tmp_path / "out"
    for value in ("0", "-3"):
        code = cli.main(["corpus", "build", "--source", str(tmp_path / "src"), "--out", str(out),
                         "--typecheck-batch", value])
        assert code == 2 and "--typecheck-batch must be at least 1" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("flag, value, message", [
    ("--workers", "0", "--workers must be at least 1, got 0"),
    ("--limit", "-1", "--limit must be at least 1, got -1"),
    ("--typecheck-batch", "0", "--typecheck-batch must be at least 1, got 0"),
    ("--shingle", "0", "--shingle must be at least 1, got 0"),
    ("--num-perm", "1", "--num-perm must be at least 2, got 1"),
    ("--num-perm", "4097", "--num-perm must be at most 4096, got 4097"),  # MinHash arrays per value
    ("--num-perm", "100000000000", "--num-perm must be at most 4096, got 100000000000"),
    ("--shard", "0/100001", "--shard 0/100001: N is at most 100000"),  # every shard number is listed
    ("--near-threshold", "0", "--near-threshold must be in (0, 1], got 0.0"),
    ("--near-threshold", "1.5", "--near-threshold must be in (0, 1], got 1.5"),
    ("--near-threshold", "nan", "--near-threshold must be in (0, 1], got nan"),
])
def test_a_bad_flag_is_named_with_its_value(tmp_path, capsys, flag, value, message):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "m.py").write_text("def f(x):\n    return x\n")
    out = tmp_path / "out"
    code = cli.main(["corpus", "build", "--source", str(tmp_path / "src"), "--out", str(out), flag, value])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("error:") == 1
    assert not out.exists()


def test_a_dedup_bucket_count_over_the_bound_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["corpus", "dedup", "--out", str(out), "--bucket", "0/100001"]) == 2
    err = capsys.readouterr().err
    assert "--bucket 0/100001: N is at most 100000" in err and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("source, meant", [("s3:/bucket/x", "s3://bucket/x"), ("s3//bucket/x", "s3://bucket/x"),
                                           ("file:/tmp/x", "file:///tmp/x"),
                                           ("hf:owner/name", "hf://datasets/owner/name")])
def test_a_mistyped_source_uri_is_named(tmp_path, capsys, source, meant):
    out = tmp_path / "out"
    assert cli.main(["corpus", "build", "--source", source, "--out", str(out)]) == 2
    assert f"--source {source!r} reads as a mistyped URI (did you mean {meant!r}?)" in capsys.readouterr().err
    assert not out.exists()


def test_merge_before_the_dedup_says_which_dedup_to_run(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "m.py").write_text('def f(x):\n    """d"""\n    return x * 2 + 1\n')
    out = str(tmp_path / "out")
    assert cli.main(["corpus", "build", "--source", str(tmp_path / "src"), "--out", out, "--shard", "0/1",
                     "--no-typecheck"]) == 0
    capsys.readouterr()
    assert cli.main(["corpus", "merge", "--out", out]) == 2
    err = capsys.readouterr().err
    assert f"{out}: no dedup has run yet; run `multiplt corpus dedup --out {out} --bucket B/D`" in err
    assert cli.main(["corpus", "dedup", "--out", out, "--bucket", "1/2"]) == 0
    capsys.readouterr()
    assert cli.main(["corpus", "merge", "--out", out]) == 2
    assert f"{out}: dedup buckets [0] of 2 are not finished yet" in capsys.readouterr().err
    assert not (tmp_path / "out" / "funnel.json").exists()
