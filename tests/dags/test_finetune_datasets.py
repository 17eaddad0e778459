"""multiplt_finetune on a second dataset: the chain run a second time on a new corpus (a new
`dataset_uri` event) plans the same training output `<base>-<experiment>-<lang>`, which holds
the first corpus's checkpoints and tags. `multiplt train` refuses to resume it on another
dataset (exit 2, "use ... a new --out", after the task took the GPU slot; an --out a DAG user
cannot set). `plan` now refuses it first, naming the folder, both datasets and the fix (another
`experiment`, or another `training_root`), whether the first run finished or not; an output
without a checkpoint, or the same dataset spelled otherwise, is planned as before.

The output is written as `multiplt train` writes it: its run config is the plan's own train
command line resolved by `multiplt train --print-config`, and each scenario checks what train
itself does with that command line (stopped where it would load the base model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from multiplt import cli
from multiplt.errors import MultipltError
from multiplt.training import loop
from multiplt_pipelines import params as schemas
from multiplt_pipelines.plans import trained_dataset, training_plan
from tests.support.airflow import load_dag


def settings(root, datasets: dict, **given) -> dict:
    """What the `settings` task hands `plan` for a run started by dataset events."""
    params = {k: v["default"] for k, v in schemas.FINETUNE.items() if "default" in v}
    return {**params, "languages": sorted(datasets), "datasets": datasets,
            "training_root": str(root), "recipe": "tiny", **given}


def plan(settings_: dict) -> list[dict]:
    """The DAG's own `plan` task."""
    return load_dag("multiplt_finetune").get_task("plan").python_callable("file:///unused", settings_)


@pytest.fixture
def stop_loading(monkeypatch):
    """`multiplt train` stops where it would load the base model (after its resume checks)."""
    def stop(ref, revision, workdir, *args, **kwargs):
        raise MultipltError(f"STOP: would load {ref}")
    monkeypatch.setattr(loop, "materialize", stop)


def trained(entry: dict, capsys, epochs: int, of: int = 2) -> None:
    """Leave under entry["out"] what `multiplt train` on the entry's command line (`of` epochs)
    leaves after `epochs` of them: its run config and a manifest row per epoch."""
    assert cli.main([*entry["train"], "--epochs", str(of), "--print-config"]) == 0
    config = yaml.safe_load(capsys.readouterr().out)
    out = entry["out"]
    Path(out).mkdir(parents=True)
    (Path(out) / "_multiplt_train.yaml").write_text(yaml.safe_dump({"config": config, "precision": "fp32"}))
    lang = entry["lang"]
    rows = [{"uri": f"{out}/checkpoints/{lang}-multiplt-epoch{e}", "tag": f"{lang}-multiplt-epoch{e}",
             "epoch": e, "step": e, "lang": lang, "experiment": "multiplt"} for e in range(1, epochs + 1)]
    (Path(out) / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def train_exit(entry: dict, capsys, of: int = 2) -> tuple[int, str]:
    code = cli.main([*entry["train"], "--epochs", str(of)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("done", [1, 2], ids=["interrupted", "finished"])
def test_a_second_corpus_is_refused_at_plan_not_at_train(tmp_path, capsys, stop_loading, done):
    """Corpus A trained `done` of 2 epochs for lua; the chain's next run announces corpus B for
    lua (and for r, whose output is new): plan fails (no retry) before any training, naming the
    folder, both datasets, the checkpoints and the fix. Train would have refused it (exit 2)."""
    from airflow.sdk.exceptions import AirflowFailException

    root = tmp_path / "training"
    first_a, second_b = f"file://{tmp_path}/translate/corpus_a", f"file://{tmp_path}/translate/corpus_b"
    [entry_a] = plan(settings(root, {"lua": first_a}))
    trained(entry_a, capsys, epochs=done)
    run_b = settings(root, {"lua": second_b, "r": second_b})
    with pytest.raises(AirflowFailException) as refused:
        plan(run_b)
    message = str(refused.value)
    out = entry_a["out"]
    assert message.startswith("cannot train lua: ")
    assert (f"{out} holds lua checkpoints {', '.join(f'lua-multiplt-epoch{e}' for e in range(1, done + 1))} "
            f"trained on {first_a}, not on this run's dataset {second_b}") in message
    assert "Set another `experiment`" in message and "multiplt_finetune" in message
    assert "another `training_root`" in message and "--out" not in message
    # what `multiplt train` on the plan's command line for B would have done, on the GPU
    entry_b = training_plan(run_b, "file:///unused")[0]
    assert entry_b["out"] == out
    code, err = train_exit(entry_b, capsys)
    assert code == 2 and "holds a run with different settings (dataset: " in err and "--out" in err
    # the fix the message names: another experiment gets an output (and tags) of its own
    [own, _] = plan({**run_b, "experiment": "multiplt_b"})
    assert own["out"] != out and own["out"].endswith("-multiplt_b-lua")
    assert own["train"][own["train"].index("--experiment") + 1] == "multiplt_b"
    assert [e["out"] for e in plan({**run_b, "training_root": str(tmp_path / "other")})][0].startswith(
        str(tmp_path / "other"))


def test_the_same_dataset_resumes_however_it_is_spelled(tmp_path, capsys, stop_loading):
    """A rerun on the dataset the output holds (here first a path, then the event's file:// URI
    with a trailing /) is planned into it: train resumes it, or finds it done."""
    root = tmp_path / "training"
    data = tmp_path / "translate" / "corpus_a"
    data.mkdir(parents=True)
    manual = settings(root, {}, languages=["lua"], dataset=str(data))
    [entry] = plan(manual)
    trained(entry, capsys, epochs=1)
    [again] = plan(settings(root, {"lua": f"file://{data}/"}))
    assert again["out"] == entry["out"]
    code, err = train_exit(again, capsys)
    assert code == 2 and "STOP: would load" in err  # past the resume checks
    trained_out = trained_dataset(entry["out"])
    assert trained_out == {"dataset": str(data), "tags": ["lua-multiplt-epoch1"]}


def test_an_output_without_a_checkpoint_is_trained_anew(tmp_path, capsys, stop_loading):
    """A run config but no manifest row (the first run died before its first checkpoint):
    `multiplt train` starts the output anew whatever dataset it names, and so does the plan."""
    root = tmp_path / "training"
    [entry] = plan(settings(root, {"lua": "file:///d/corpus_a"}))
    trained(entry, capsys, epochs=0)
    assert trained_dataset(entry["out"]) is None
    [again] = plan(settings(root, {"lua": "file:///d/corpus_b"}))
    assert again["out"] == entry["out"]
    code, err = train_exit(again, capsys)
    assert code == 2 and "STOP: would load" in err


def test_a_storage_error_fails_the_plan_with_a_retry(tmp_path, monkeypatch):
    """The store unreachable while plan reads an output: the task fails with the storage error
    (retried), not the no-retry refusal, and not a plan that lets train find out."""
    from airflow.sdk.exceptions import AirflowFailException
    from multiplt import storage
    from multiplt.errors import PlatformError

    def unreachable(uri):
        raise PlatformError(f"cannot reach the object store for {uri}")

    monkeypatch.setattr(storage, "exists", unreachable)
    with pytest.raises(PlatformError, match="cannot reach") as failed:
        plan(settings(tmp_path / "training", {"lua": "file:///d/corpus_b"}))
    assert not isinstance(failed.value, AirflowFailException)
