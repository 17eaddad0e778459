"""Two `multiplt testgen` runs of other settings (--min-coverage 0 and 90) started at once into one
new --out on object storage: both found no shard config when they began, so the check at the
start passes both. The shard's config.json is created with a conditional create, and the run
that finds another run's there is refused before it samples anything, so the shard never holds
one run's rows under the other's config.

The interleaving is made deterministic by running the second testgen from inside the first
one's reading of its rows (after its checks, before its writes), where a real second process
could run. Replay backend, generate stage: no sandbox needed."""

import json

import polars as pl

from multiplt import storage
from multiplt.testgen import inputs, pipeline

from tests.unit.testgen.test_out_folder import functions, run_testgen


def other_while_reading_rows(monkeypatch, other):
    real = inputs.read_functions
    state = {"raced": False}

    def read_functions(uri):
        if not state["raced"]:
            state["raced"] = True
            assert other() == 0
        return real(uri)

    monkeypatch.setattr(inputs, "read_functions", read_functions)
    return state


def test_a_run_of_other_settings_begun_at_once_is_refused_before_it_samples(tmp_path, s3_bucket,
                                                                          monkeypatch, capsys):
    fn, out = functions(tmp_path), f"{s3_bucket}/tg"
    state = other_while_reading_rows(monkeypatch,
                                     lambda: run_testgen(fn, out, "--min-coverage", "0"))
    assert run_testgen(fn, out, "--min-coverage", "90") == 2
    assert state["raced"]
    err = capsys.readouterr().err
    assert err.count("error:") == 1
    config_uri = storage.join(out, "work", "shard-all", "config.json")
    assert (f"{config_uri} records another run (min_coverage: 0 there, 90 now); "
            "use another --out") in err
    config = json.loads(storage.read_text(config_uri))
    assert config["min_coverage"] == 0
    # the other's rerun goes on; this one's is refused as at the start
    assert run_testgen(fn, out, "--min-coverage", "0") == 0
    assert run_testgen(fn, out, "--min-coverage", "90") == 2


def test_a_run_over_other_rows_begun_at_once_is_refused_before_it_samples(tmp_path, s3_bucket,
                                                                         monkeypatch, capsys):
    """The other run, over other rows (a part of the same functions), wrote its rows.jsonl
    after this one found none there: rows.jsonl is created only where none is, so this run is
    refused, naming the other rows, before it writes its prompts over the other's (the
    generation driver would only then refuse the folder, for another benchmark sha256)."""
    fn, out = functions(tmp_path), f"{s3_bucket}/tg"
    fewer = tmp_path / "fewer"
    (fewer / "functions").mkdir(parents=True)
    pl.read_parquet(f"{fn}/functions/part-0.parquet").head(1).write_parquet(
        fewer / "functions" / "part-0.parquet")
    real, state = pipeline._refuse_other_rows, {"raced": False}

    def refuse_other_rows(*args):
        real(*args)
        if not state["raced"]:  # this run found no other rows; the other writes its own now
            state["raced"] = True
            assert run_testgen(str(fewer), out) == 0

    monkeypatch.setattr(pipeline, "_refuse_other_rows", refuse_other_rows)
    assert run_testgen(fn, out) == 2
    assert state["raced"]
    err = capsys.readouterr().err
    assert err.count("error:") == 1
    assert f"{out} holds a run of shard-all over other rows than {fn} has now; use another --out" in err
    for name in ("rows.jsonl", "prompts.jsonl"):  # the other's, not written over
        assert len(storage.read_jsonl(storage.join(out, "work", "shard-all", name))) == 1
