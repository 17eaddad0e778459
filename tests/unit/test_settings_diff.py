"""One wording (multiplt.settings_diff) for the settings a run recorded under --out and this run
do not share, in `train`, `corpus build` and `testgen` alike: values as JSON, None as `none`."""

import json

import pytest
import yaml

from multiplt import cli, storage
from multiplt.errors import MultipltError
from multiplt.settings_diff import differences
from multiplt.testgen import pipeline as testgen_pipeline
from multiplt.testgen.config import TestgenConfig
from tests.unit.training import test_out_folder


def test_each_case_is_worded_one_way():
    saved = {"lr": 0.001, "model": "a/b", "limit": None, "old": [1, 2]}
    now = {"lr": 0.01, "model": "a/c", "limit": 10, "seed": 7}
    assert differences(saved, now, ["lr", "model", "limit", "seed", "old"]) == [
        "lr: 0.001 there, 0.01 now", 'model: "a/b" there, "a/c" now', "limit: none there, 10 now",
        "seed: not recorded there, 7 now", "old: [1, 2] there, no such setting now"]
    assert differences(saved, now, []) == []


def test_testgen_names_another_runs_settings_as_train_and_corpus_do(tmp_path):
    """testgen used to show repr()s (`'a/b' there`, `None there`)."""
    work = str(tmp_path / "out" / "_work")
    old = TestgenConfig(functions=str(tmp_path / "f"), out=str(tmp_path / "out"), model="org/a", n=2)
    storage.write_json(storage.join(work, "config.json"), old.as_dict())
    new = TestgenConfig(functions=old.functions, out=old.out, model="org/b", revision="main", n=3)
    with pytest.raises(MultipltError) as raised:
        testgen_pipeline._check_same_run(new, work)
    assert str(raised.value) == (f"{work}/config.json records another run (model: \"org/a\" there, "
                                 "\"org/b\" now; revision: none there, \"main\" now; n: 2 there, 3 now); "
                                 "use another --out")
    testgen_pipeline._check_same_run(old, work)  # the same run: nothing to say


loading = test_out_folder.loading  # the fixture: a run stops where it would load the base model


def test_train_names_another_precision_as_its_other_settings(tmp_path, capsys, loading):
    """The run config's `precision` was shown bare (`bf16-mixed there, fp32 now`) beside the
    other settings' JSON."""
    (tmp_path / "racket.jsonl").write_text('{"content": "(define x 1)"}\n')
    out = tmp_path / "out"
    assert cli.main(["train", "--dataset", str(tmp_path / "racket.jsonl"), "--base", "base-model", "--lang",
                     "rkt", "--experiment", "x", "--out", str(out), "--print-config"]) == 0
    saved = yaml.safe_load(capsys.readouterr().out)
    out.mkdir()
    (out / "_multiplt_train.yaml").write_text(yaml.safe_dump({"config": saved, "precision": "bf16-mixed"}))
    (out / "manifest.jsonl").write_text(json.dumps(
        {"uri": str(out / "checkpoints" / "rkt-x-epoch1"), "tag": "rkt-x-epoch1", "epoch": 1,
         "lang": "rkt", "experiment": "x", "step": 1}) + "\n")
    assert test_out_folder.train(tmp_path, out) == 2
    err = capsys.readouterr().err
    assert (f'{out} holds a run with different settings (precision: "bf16-mixed" there, "fp32" now); use the '
            "same settings to resume it, or a new --out") in err
