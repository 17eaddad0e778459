"""Every shard of one build reads one input: the listing and revision the first shard recorded
(`_work/input.json`). A source that changes between shards (a new Hub commit, a file added to a
folder) can no longer shift the round-robin slices and leave a file unread; dedup and the merge
refuse shards that read different inputs. Hub sources against the test Hub (tests/hub_server.py)."""

from __future__ import annotations

import io
import json

import polars as pl
import pytest

from multiplt import cli
from multiplt.corpus import dedup, merge, pin
from multiplt.errors import MultipltError


def fn(name: str, k: int) -> str:
    return f'def {name}(x: int) -> int:\n    """Doc {name}."""\n    y = x * {k} + {k + 1}\n    return y - {k}\n'


def parquet(name: str, k: int) -> bytes:
    buffer = io.BytesIO()
    pl.DataFrame({"content": [fn(name, k)]}).write_parquet(buffer)
    return buffer.getvalue()


def corpus(*args) -> int:
    return cli.main(["corpus", *args])


def build(source, out, *extra) -> int:
    return corpus("build", "--source", str(source), "--out", str(out), "--no-typecheck", *extra)


def kept(out) -> list[str]:
    return sorted(pl.read_parquet(out / "functions" / "*.parquet")["id"].to_list())


def push(repo, files: dict, title: str) -> str:
    """A commit on main adding `files` ({path: bytes}) to main's tree; its oid."""
    head = repo.commits[repo.branches["main"]]
    tree = {**head.files, **{path: (data, False) for path, data in files.items()}}
    repo.branches["main"] = repo.commit(head.oid, tree, title).oid
    return repo.branches["main"]


def shard_0_then_a_commit(test_hub, tmp_path):
    """ns/code holds data/a and data/b at C1; shard 0/2 of a build of it runs; then data/a2
    lands (C2). (out, source, C1, C2)."""
    repo = test_hub.create_repo("dataset", "ns/code")
    c1 = push(repo, {"data/a.parquet": parquet("fa", 3), "data/b.parquet": parquet("fb", 5)}, "a, b")
    out = tmp_path / "out"
    source = "hf://datasets/ns/code/data"
    assert build(source, out, "--shard", "0/2") == 0
    c2 = push(repo, {"data/a2.parquet": parquet("fa2", 7)}, "a2")
    return out, source, c1, c2


def test_a_hub_commit_between_shards_changes_nothing_the_build_reads(test_hub, tmp_path):
    """ns/code holds data/a and data/b at C1; shard 0/2 runs; data/a2 lands (C2); shard 1/2 and
    a rerun of shard 0/2 still read C1's listing: a and b, never a2, and no file is skipped."""
    out, source, c1, c2 = shard_0_then_a_commit(test_hub, tmp_path)
    assert c2 != c1
    assert build(source, out, "--shard", "1/2") == 0
    assert corpus("dedup", "--out", str(out), "--bucket", "0/1") == 0
    assert corpus("merge", "--out", str(out)) == 0
    assert kept(out) == ["a.parquet#0:1:fa", "b.parquet#0:1:fb"]
    assert json.loads((out / "corpus_config.json").read_text())["source_revision"] == c1
    assert json.loads((out / "funnel.json").read_text())["files"]["read"] == 2
    record = json.loads((out / "_work" / "input.json").read_text())
    assert (record["revision"], record["units"]) == (c1, ["a.parquet", "b.parquet"])
    # an interrupted shard rerun later reads the same input, so the output is the same
    (out / "_work" / "shards" / "00001-of-00002" / "_SUCCESS").unlink()
    assert build(source, out, "--shard", "1/2") == 0
    assert corpus("merge", "--out", str(out)) == 0
    assert kept(out) == ["a.parquet#0:1:fa", "b.parquet#0:1:fb"]


def test_a_file_added_to_a_folder_between_shards_is_not_read_and_none_is_lost(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text(fn("fa", 3))
    (src / "b.py").write_text(fn("fb", 5))
    out = tmp_path / "out"
    assert build(src, out, "--shard", "0/2") == 0
    (src / "a2.py").write_text(fn("fa2", 7))  # sorts between a.py and b.py
    capsys.readouterr()
    assert build(src, out, "--shard", "1/2") == 0
    err = capsys.readouterr().err
    assert (f"WARNING multiplt.corpus: --source {src}: 1 input file(s) appeared after the build under "
            f"{out} began and are not read (e.g. a2.py)") in err
    assert corpus("dedup", "--out", str(out), "--bucket", "0/1") == 0
    assert corpus("merge", "--out", str(out)) == 0
    assert kept(out) == ["a.py:1:fa", "b.py:1:fb"]


def test_a_listed_file_that_is_gone_is_one_clear_error(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    for name, k in (("a", 3), ("b", 5), ("c", 9)):
        (src / f"{name}.py").write_text(fn(name, k))
    out = tmp_path / "out"
    assert build(src, out, "--shard", "0/2") == 0
    (src / "b.py").unlink()
    capsys.readouterr()
    assert build(src, out, "--shard", "1/2") == 2
    err = capsys.readouterr().err
    assert (f"--source {src}: 1 of the 3 input files the build under {out} listed when it began "
            f"are gone (e.g. b.py;") in err and err.count("error:") == 1
    assert not (out / "_work" / "shards" / "00001-of-00002").exists()


def test_shards_starting_at_once_share_the_first_record(tmp_path):
    """Of shards starting together, one creates the record (a conditional create) and the
    others read it: a shard that resolved the source after a file was added reads the record's
    listing, not its own."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text(fn("fa", 3))
    (src / "b.py").write_text(fn("fb", 5))
    out = tmp_path / "out"
    first, record = pin.open_input(str(src), str(out))
    (src / "a2.py").write_text(fn("fa2", 7))
    second, again = pin.open_input(str(src), str(out))
    assert record == again and record["units"] == ["a.py", "b.py"]
    assert pin._claim(pin.pin_uri(str(out)), {"source": str(src), "revision": None,
                                             "units": ["a.py", "a2.py", "b.py"]})["units"] == ["a.py", "b.py"]


def test_another_source_under_the_same_out_is_refused(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text(fn("fa", 3))
    other = tmp_path / "other"
    other.mkdir()
    (other / "z.py").write_text(fn("fz", 2))
    out = tmp_path / "out"
    pin.open_input(str(src), str(out))
    with pytest.raises(MultipltError, match=f"{out} holds a build of --source {src}, not {other}"):
        pin.open_input(str(other), str(out))


def test_dedup_and_merge_refuse_shards_that_read_different_inputs(test_hub, tmp_path, capsys):
    """Shards written before the record existed, or with a record rewritten in between (storage
    without conditional writes), name their revisions: dedup and the merge refuse to join them."""
    out, source, c1, c2 = shard_0_then_a_commit(test_hub, tmp_path)
    (out / "_work" / "input.json").unlink()  # as if shard 1 recorded its own input
    assert build(source, out, "--shard", "1/2") == 0
    capsys.readouterr()
    for command in (["dedup", "--out", str(out), "--bucket", "0/1"], ["merge", "--out", str(out)]):
        assert corpus(*command) == 2
        err = capsys.readouterr().err
        assert (f"{out}: its shards read different inputs (shard 0/2: revision {c1}, 2 input files, "
                f"listing ") in err and f"shard 1/2: revision {c2}, 3 input files, listing " in err
        assert "the source changed while they ran; use a fresh --out" in err and err.count("error:") == 1
    assert not (out / "_work" / "dedup").exists() and not (out / "functions").exists()
    with pytest.raises(MultipltError, match="read different inputs"):
        merge.merge(str(out))
    with pytest.raises(MultipltError, match="read different inputs"):
        dedup.run_bucket(str(out), 0, 1)


def test_a_one_shard_build_records_its_input_with_its_parts(tmp_path):
    """The one-process build has no other shard to agree with: its record is written when its
    shard finishes (an empty corpus it refuses leaves nothing), and a rerun reads it."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text(fn("fa", 3))
    out = tmp_path / "out"
    assert build(src, out) == 0
    record = json.loads((out / "_work" / "input.json").read_text())
    assert (record["source"], record["revision"], record["units"]) == (str(src), None, ["a.py"])
    stats = json.loads((out / "_work" / "shards" / "00000-of-00001" / "stats.json").read_text())
    assert (stats["input"], stats["units"]) == (pin.digest(record), 1)
    (src / "b.py").write_text(fn("fb", 5))
    (out / "_work" / "shards" / "00000-of-00001" / "_SUCCESS").unlink()  # as if killed
    assert build(src, out) == 0
    assert kept(out) == ["a.py:1:fa"]
    # a record written by another build meanwhile is not overwritten: this one is refused
    _, mine = pin.open_input(str(src), str(tmp_path / "fresh"), record=False)
    pin._claim(pin.pin_uri(str(tmp_path / "fresh")), {"source": str(src), "revision": None, "units": ["b.py"]})
    with pytest.raises(MultipltError, match="another build began there while this one ran"):
        pin.write(str(tmp_path / "fresh"), mine)
