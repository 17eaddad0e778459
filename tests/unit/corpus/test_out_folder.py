"""`multiplt corpus build --out`: a folder holding files no build wrote is refused before any
document is read (a foreign part in functions/ would reach testgen); an empty folder, a build's
own folder (resumed) and the shards of one build writing at once are accepted."""

from multiplt import cli
from multiplt.corpus import extract

SOURCE = 'def f(x):\n    """Twice x plus one."""\n    return x * 2 + 1\n'


def source(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "m.py").write_text(SOURCE)
    (tmp_path / "src" / "n.py").write_text(SOURCE.replace("def f", "def g").replace("+ 1", "+ 3"))
    return str(tmp_path / "src")


def build(src, out, *extra):
    return cli.main(["corpus", "build", "--source", src, "--out", str(out), "--no-typecheck", *extra])


def test_a_folder_with_foreign_files_is_refused_before_reading(tmp_path, monkeypatch, capsys):
    src = source(tmp_path)
    out = tmp_path / "cb"
    (out / "functions").mkdir(parents=True)
    (out / "functions" / "mine.parquet").write_text("x")

    def never(doc):
        raise AssertionError(f"{doc.origin} was read")
    monkeypatch.setattr(extract, "extract", never)
    for extra in ([], ["--shard", "1/2"]):
        assert build(src, out, *extra) == 2
        err = capsys.readouterr().err
        assert (f"--out {out} holds files this command did not write (e.g. functions/mine.parquet); use an "
                f"empty or new folder") in err and err.count("error:") == 1
    assert [str(p.relative_to(out)) for p in out.rglob("*")] == ["functions", "functions/mine.parquet"]


def test_empty_own_and_concurrent_folders_are_accepted(tmp_path):
    src = source(tmp_path)
    empty = tmp_path / "empty"
    (empty / "made-by-the-runtime").mkdir(parents=True)  # folders without files are empty
    assert build(src, empty) == 0 and (empty / "funnel.json").exists()
    assert build(src, empty) == 0  # a rerun of the finished build

    # shard 0 of 2 killed (or still running) after its type check saved verdicts, before any
    # config or part: shard 1 starts meanwhile, and all of them finish into the one folder
    sharded = tmp_path / "sharded"
    verdicts = sharded / "_work" / "shards" / "00000-of-00002" / "typecheck"
    verdicts.mkdir(parents=True)
    (verdicts / "batch-00000.json").write_text("{}")
    assert build(src, sharded, "--shard", "1/2") == 0
    assert build(src, sharded, "--shard", "0/2") == 0
    assert cli.main(["corpus", "dedup", "--out", str(sharded), "--bucket", "0/1"]) == 0
    assert cli.main(["corpus", "merge", "--out", str(sharded)]) == 0
    assert build(src, sharded, "--shard", "1/2") == 0  # resumed: finished, skipped


def test_a_shard_of_another_count_is_refused_before_reading(tmp_path, monkeypatch, capsys):
    src = source(tmp_path)
    out = tmp_path / "c3"
    assert build(src, out, "--shard", "0/2") == 0
    capsys.readouterr()
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))

    def never(doc):
        raise AssertionError(f"{doc.origin} was read")
    monkeypatch.setattr(extract, "extract", never)
    for extra, n in ((["--shard", "1/3"], 3), ([], 1)):  # the one-process build is shard 0 of 1
        assert build(src, out, *extra) == 2
        err = capsys.readouterr().err
        assert (f"{out} holds shards of a 2-shard build (finished: 0/2), not of {n}: give --shard "
                f"K/2") in err and "use another --out" in err and err.count("error:") == 1
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before
    monkeypatch.undo()
    assert build(src, out, "--shard", "1/2") == 0  # the same count goes on
    assert cli.main(["corpus", "dedup", "--out", str(out), "--bucket", "0/1"]) == 0
    assert cli.main(["corpus", "merge", "--out", str(out)]) == 0
