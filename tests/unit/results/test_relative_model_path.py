"""A training output named by a relative path (`generate --model tr --revision TAG`, or `--model
tr/checkpoints/TAG`) is recorded by `results record` under its absolute path, as the run folder
is, so `publish checkpoints --from $PWD/tr --results-store S` finds its pass@1 by its tag and
`publish results` names it; a Hub id stays as it is."""

import pytest

from multiplt import cli, storage
from multiplt.evaluation.run_folder import SCORES_HEADER
from multiplt.results import read_store

TAG = "rkt-x-epoch2"


@pytest.fixture
def bench(tmp_path):
    rows = [{"name": "HumanEval_0_f", "language": "rkt", "prompt": "#lang racket\n(define (f x)\n",
             "tests": "(module+ test)\n", "stop_tokens": ["\n(define"]}]
    storage.write_jsonl(str(tmp_path / "bench.jsonl"), rows)
    storage.write_jsonl(str(tmp_path / "replay.jsonl"), [{"name": "HumanEval_0_f", "completion": "  x)"}])
    return "bench.jsonl", "replay.jsonl"


def training_output(root) -> None:
    ckpt = root / "tr" / "checkpoints" / TAG
    ckpt.mkdir(parents=True)
    storage.write_jsonl(str(root / "tr" / "manifest.jsonl"), [
        {"uri": str(ckpt), "epoch": 2, "step": 10, "tag": TAG, "eval_loss": 1.5, "lang": "rkt",
         "experiment": "x", "base": "org/tiny", "tokenizer": str(ckpt)}])


def generated_and_recorded(bench, folder: str, *model: str) -> dict:
    assert cli.main(["generate", "--benchmark", bench[0], "--backend", "replay", "--replay-source",
                     bench[1], "--n", "1", "--out", folder, *model]) == 0
    storage.write_text(f"{folder}/_scores.csv", ",".join(SCORES_HEADER) + f"\n{folder},1,0.5,1,1,1\n")
    assert cli.main(["results", "record", "--scores", folder, "--store", "s.parquet"]) == 0
    rows = read_store("s.parquet")
    return rows.row(rows.height - 1, named=True)


@pytest.mark.parametrize("model", [["--model", "tr", "--revision", TAG], ["--model", "./tr/", "--revision", TAG],
                                   ["--model", f"tr/checkpoints/{TAG}"]], ids=["revision", "dot", "folder"])
def test_a_relative_training_output_is_recorded_absolute(bench, tmp_path, monkeypatch, model):
    from multiplt.hub.checkpoints import pass_at_1
    from multiplt.storage import manifest

    monkeypatch.chdir(tmp_path)
    training_output(tmp_path)
    row = generated_and_recorded(bench, "run", *model)
    out = str(tmp_path / "tr")
    assert (row["model"], row["revision"], row["epoch"]) == (out, TAG, 2)
    outputs = [{"out": out, "given": [out], "rows": manifest.read(out)}]
    assert pass_at_1("s.parquet", outputs, "me/m").scores == {TAG: 0.5}


@pytest.mark.parametrize("model", ["org/tiny", "tiny"])
def test_a_hub_id_stays_as_written(bench, tmp_path, monkeypatch, model):
    monkeypatch.chdir(tmp_path)
    row = generated_and_recorded(bench, "run", "--model", model)
    assert (row["model"], row["run_uri"]) == (model, str(tmp_path / "run"))


@pytest.mark.parametrize("decoy", [False, True], ids=["nothing-there", "another-tr-there"])
def test_a_checkpoint_run_recorded_elsewhere_is_stored_as_its_training_output(bench, tmp_path,
                                                                              monkeypatch, decoy):
    """`--model tr --revision TAG` records the checkpoint's absolute uri (its manifest row's):
    the run recorded from another folder stores that training output, not `tr` as written nor
    the `tr` of the folder it is recorded from."""
    monkeypatch.chdir(tmp_path)
    training_output(tmp_path)
    assert cli.main(["generate", "--benchmark", bench[0], "--backend", "replay", "--replay-source",
                     bench[1], "--n", "1", "--out", "run", "--model", "tr", "--revision", TAG]) == 0
    storage.write_text("run/_scores.csv", ",".join(SCORES_HEADER) + "\nrun,1,0.5,1,1,1\n")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "tr" if decoy else elsewhere).mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    assert cli.main(["results", "record", "--scores", "../run", "--store", "s.parquet"]) == 0
    row = read_store("s.parquet").row(0, named=True)
    assert (row["model"], row["revision"], row["tokenizer"]) == (str(tmp_path / "tr"), TAG, "tr")


def test_a_checkpoint_loaded_by_a_relative_folder_is_made_absolute_only_from_its_folder(
        bench, tmp_path, monkeypatch, capsys):
    """`--model tr/checkpoints/TAG` records that relative uri, so nothing in the record says where
    `tr` is: from generate's folder it is made absolute (the first test); from another, where
    no `tr` is, it is stored as written, with a warning."""
    monkeypatch.chdir(tmp_path)
    training_output(tmp_path)
    assert cli.main(["generate", "--benchmark", bench[0], "--backend", "replay", "--replay-source",
                     bench[1], "--n", "1", "--out", "run", "--model", f"tr/checkpoints/{TAG}"]) == 0
    storage.write_text("run/_scores.csv", ",".join(SCORES_HEADER) + "\nrun,1,0.5,1,1,1\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert cli.main(["results", "record", "--scores", "../run", "--store", "s.parquet"]) == 0
    row = read_store("s.parquet").row(0, named=True)
    assert (row["model"], row["revision"]) == ("tr", TAG)
    assert "model tr is a relative path that is no folder from here" in capsys.readouterr().err
