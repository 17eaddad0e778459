"""`multiplt train` into an --out holding a run of other settings: the error names each differing
setting with both values (`lr: 0.001 there, 0.01 now`), as generate and corpus build do."""

import json

import pytest
import yaml

from multiplt import cli
from multiplt.errors import MultipltError
from multiplt.training import loop


@pytest.fixture
def loading(monkeypatch):
    """Stops a run where it would start loading the base model."""
    def stop(ref, revision, workdir):
        raise MultipltError(f"STOP: would load {ref}")
    monkeypatch.setattr(loop, "materialize", stop)


def test_other_settings_are_named_with_both_values(tmp_path, capsys, loading):
    (tmp_path / "racket.jsonl").write_text('{"content": "(define x 1)"}\n')
    out = tmp_path / "out"
    argv = ["train", "--dataset", str(tmp_path / "racket.jsonl"), "--base", "base-model",
            "--lang", "rkt", "--experiment", "x", "--out", str(out)]
    # the run under --out: its run config (lr 0.001, as `--print-config` resolves it) and one epoch
    assert cli.main([*argv, "--lr", "0.001", "--print-config"]) == 0
    saved = yaml.safe_load(capsys.readouterr().out)
    saved.pop("seed")  # recorded by no older run config: "not recorded there"
    out.mkdir()
    (out / "_multiplt_train.yaml").write_text(yaml.safe_dump({"config": saved, "precision": "fp32"}))
    (out / "manifest.jsonl").write_text(json.dumps(
        {"uri": str(out / "checkpoints" / "rkt-x-epoch1"), "tag": "rkt-x-epoch1", "epoch": 1,
         "lang": "rkt", "experiment": "x", "step": 1}) + "\n")

    assert cli.main([*argv, "--lr", "0.01", "--seed", "7"]) == 2
    err = capsys.readouterr().err
    assert (f"{out} holds a run with different settings (lr: 0.001 there, 0.01 now; seed: not "
            f"recorded there, 7 now); use the same settings to resume it, or a new --out") in err
    assert "STOP" not in err
