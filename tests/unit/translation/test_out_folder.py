"""`multiplt translate --out`: a folder holding files translate did not write (a parquet file in
data/ would be published as part of a split) is refused before the tests are read; an empty
folder, and the shards and languages of one run writing into one folder, are accepted. Replay
backend, sample stage: no language runtime needed."""

from multiplt import cli
from multiplt.execution import view
from multiplt.translation import source
from tests.fixtures import translate as fx


def run_translate(inputs, out, *extra):
    return cli.main(["translate", "--tests", inputs["tests"], "--lang", "lua", "--out", str(out),
                     "--backend", "replay", "--replay-source", inputs["replay"], "--n", str(fx.N),
                     "--stage", "sample", *extra])


def test_a_folder_with_foreign_files_is_refused_before_reading(tmp_path, monkeypatch, capsys):
    inputs = fx.write(tmp_path / "in")
    out = tmp_path / "tr"
    (out / "data").mkdir(parents=True)
    (out / "data" / "lua-mine.parquet").write_bytes((tmp_path / "in" / "tests" / "part-0.parquet").read_bytes())

    def never(*args, **kwargs):
        raise AssertionError("the tests were read")
    monkeypatch.setattr(source, "load_rows", never)
    for extra in ([], ["--shard", "1/2"], ["--stage", "summary"]):
        assert run_translate(inputs, out, *extra) == 2
        err = capsys.readouterr().err
        assert (f"--out {out} holds files this command did not write (e.g. data/lua-mine.parquet); use an "
                f"empty or new folder") in err and err.count("error:") == 1
    assert [str(p.relative_to(out)) for p in out.rglob("*")] == ["data", "data/lua-mine.parquet"]


def test_an_empty_folder_and_the_shards_of_one_run_are_accepted(tmp_path):
    inputs = fx.write(tmp_path / "in")
    out = tmp_path / "tr"
    (out / "made-by-the-runtime").mkdir(parents=True)
    assert run_translate(inputs, out, "--shard", "0/2") == 0
    assert run_translate(inputs, out, "--shard", "1/2") == 0  # shard 0 wrote into work/ (it may still run)
    assert run_translate(inputs, out, "--shard", "0/2", "--lang", "r") == 0
    assert run_translate(inputs, out, "--shard", "0/2") == 0  # resumed
    assert sorted(str(p.relative_to(out / "work")) for p in (out / "work").glob("*/*")) == [
        "lua/0-of-2", "lua/1-of-2", "r/0-of-2"]


def test_a_completions_folder_the_sandbox_cannot_hide_is_named_as_translates(tmp_path, monkeypatch,
                                                                             capsys):
    """translate executes its own completions folder: the refusal names that folder, not the
    --in of `multiplt execute`, which the user never gave."""
    inputs = fx.write(tmp_path / "in")
    out = tmp_path / "tr"
    completions = out / "work" / "lua" / "0-of-1" / "completions"
    monkeypatch.setattr(view, "unhideable",
                        lambda path: "planted reason" if path == str(completions) else None)
    assert run_translate(inputs, out, "--stage", "all") == 2
    err = capsys.readouterr().err
    assert (f"translate's completions folder {completions}: programs must not see the run's "
            "completions and results, but the sandbox cannot hide this folder (planted reason); "
            "use a folder of its own") in err
    assert err.count("error:") == 1 and "--in" not in err


def test_another_commands_output_is_refused(tmp_path, capsys):
    """A testgen output has a work/ folder with files and a funnel.json too: it is not a translate
    output (translate marks its own by work/<lang>/K-of-N/problems.jsonl or config/<lang>-K-of-N.json),
    so translate --out TESTGEN_OUT is refused and the testgen files stay as they were."""
    inputs = fx.write(tmp_path / "in")
    tg = tmp_path / "in"  # the tests input itself, made to look like the whole testgen output
    (tg / "work" / "shard-all").mkdir(parents=True)
    (tg / "work" / "shard-all" / "rows.jsonl").write_text("{}\n")
    (tg / "work" / "shard-all" / "_DONE").write_text('{"shard": "shard-all"}')
    (tg / "funnel.json").write_text('{"steps": []}')
    before = {p: p.read_bytes() for p in tg.rglob("*") if p.is_file()}
    for stage in ("sample", "all", "collect", "summary"):
        assert run_translate(inputs, tg, "--stage", stage) == 2
        err = capsys.readouterr().err
        assert f"--out {tg} holds files this command did not write (e.g. funnel.json)" in err
        assert err.count("error:") == 1
        assert {p: p.read_bytes() for p in tg.rglob("*") if p.is_file()} == before
    # a translate output whose work/ was cleared is still its own: its config/ says so
    out = tmp_path / "tr"
    assert run_translate(inputs, out) == 0
    (out / "config").mkdir()
    (out / "config" / "lua-0-of-1.json").write_text("{}")
    import shutil

    shutil.rmtree(out / "work")
    (out / "data").mkdir()
    (out / "data" / "x.parquet").write_text("")
    assert run_translate(inputs, out) == 0
