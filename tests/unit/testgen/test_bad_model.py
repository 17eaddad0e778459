"""`multiplt testgen` with a --model or --tokenizer the backend cannot load: one error, exit 2,
and nothing written, so that the corrected rerun into the same --out is not refused as "another
run" by files the failed one left (work/<shard>/config.json records the model). Checked as the
backend resolves them, without loading weights; local paths only (no Hub look-up)."""

import json

from multiplt import cli
from tests.unit.testgen.test_out_folder import FIXTURE, functions


def run_testgen(fn, out, *extra):
    return cli.main(["testgen", "--functions", fn, "--out", str(out), "--n", "1", "--workers", "1",
                     "--stage", "generate", *extra])


def test_a_model_that_cannot_load_writes_nothing_and_the_rerun_runs(tmp_path, capsys):
    fn, out = functions(tmp_path), tmp_path / "tgo"
    missing = tmp_path / "nosuchdir"
    assert run_testgen(fn, out, "--model", str(missing)) == 2
    err = capsys.readouterr().err
    assert err == f"multiplt testgen: error: model {str(missing)!r} is not a model folder\n"
    assert not out.exists()
    # the corrected rerun (here the replay backend: no model to load) is not refused
    assert run_testgen(fn, out, "--backend", "replay", "--replay-source", str(FIXTURE / "replay.jsonl")) == 0
    assert json.loads((out / "work" / "shard-all" / "config.json").read_text())["backend"] == "replay"


def test_a_folder_without_a_model_or_a_missing_tokenizer_writes_nothing(tmp_path, capsys):
    fn = functions(tmp_path)
    empty = tmp_path / "empty-model"
    empty.mkdir()
    assert run_testgen(fn, tmp_path / "a", "--model", str(empty)) == 2
    assert f"{empty} holds no model: no config.json in {empty}" in capsys.readouterr().err
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")  # enough for the check, which loads no weights
    assert run_testgen(fn, tmp_path / "b", "--model", str(model), "--tokenizer", str(tmp_path / "notok")) == 2
    assert f"tokenizer {str(tmp_path / 'notok')!r} is not a model folder" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_shard_without_rows_needs_no_model(tmp_path, capsys):
    """A shard that holds no row of the dataset samples nothing: its generate stage neither loads
    nor checks the model (an uncached Hub model offline, a model folder not there), exit 0; a
    shard with rows is refused as above."""
    from multiplt.testgen import inputs

    fn, missing = functions(tmp_path), tmp_path / "nosuchdir"
    sha1s = [json.loads(line)["sha1"] for line in (FIXTURE / "functions.jsonl").read_text().splitlines()]
    n = len(sha1s) + 1
    empty = next(k for k in range(n) if not any(inputs.in_shard(s, (k, n)) for s in sha1s))
    assert run_testgen(fn, tmp_path / "a", "--model", str(missing), "--shard", f"{empty}/{n}") == 0, \
        capsys.readouterr().err
    full = next(k for k in range(n) if any(inputs.in_shard(s, (k, n)) for s in sha1s))
    assert run_testgen(fn, tmp_path / "b", "--model", str(missing), "--shard", f"{full}/{n}") == 2
    assert f"model {str(missing)!r} is not a model folder" in capsys.readouterr().err
