"""A checkpoint of a training output evaluated without --epoch/--experiment is recorded with its
manifest row's epoch and experiment, however it was loaded (`--model OUT --revision TAG` or
`--model OUT/checkpoints/TAG`), not as the base model (epoch 0, no experiment); a label given
that contradicts the manifest is refused; `publish checkpoints --results-store` finds the pass@1
of either way's run by its tag."""

import shutil

import pytest

from multiplt import cli, storage
from multiplt.evaluation.run_folder import SCORES_HEADER, parse_run_yaml
from multiplt.results import read_store

TAG = "rkt-x-epoch2"


def training_output(root, model=None) -> str:
    """A training output with one checkpoint (epoch 2 of experiment x) in its manifest: the tiny
    model's files when `model` is given, else an empty folder (the replay backend loads none)."""
    out = root / "out"
    ckpt = out / "checkpoints" / TAG
    if model:
        shutil.copytree(model, ckpt)
    else:
        ckpt.mkdir(parents=True)
    storage.write_jsonl(str(out / "manifest.jsonl"), [
        {"uri": str(ckpt), "epoch": 2, "step": 10, "tag": TAG, "eval_loss": 1.5, "lang": "rkt",
         "experiment": "x", "base": "org/tiny", "tokenizer": str(ckpt)}])
    return str(out)


def record(folder) -> dict:
    return parse_run_yaml((folder / "_multiplt_run.yaml").read_text(), "r")


def scored(folder, estimate: float, n: int = 1) -> None:
    """A scores CSV of one problem as `multiplt score` writes it (no execution needed: no
    results files)."""
    storage.write_text(str(folder / "_scores.csv"), ",".join(SCORES_HEADER) + "\n"
                       f"{folder.name},1,{estimate},1,{n},{n}\n")


def recorded(folder, store) -> dict:
    assert cli.main(["results", "record", "--scores", str(folder), "--store", str(store)]) == 0
    return read_store(str(store)).row(0, named=True)


def test_a_checkpoint_is_recorded_with_its_epoch_and_experiment_either_way(bench, tmp_path, tiny_model,
                                                                         capsys):
    """It was recorded as epoch 0 with no experiment, and the one loaded by its folder under that
    path with no revision, so `publish checkpoints --results-store` found no pass@1 for it."""
    from multiplt.hub.checkpoints import pass_at_1
    from multiplt.storage import manifest

    out = training_output(tmp_path / "train", tiny_model)
    ckpt = storage.join(out, "checkpoints", TAG)
    common = ["generate", "--benchmark", bench[0], "--n", "1", "--max-new-tokens", "4", "--limit", "1"]
    ways = {"revision": (["--model", out, "--revision", TAG], 0.25),
            "folder": (["--model", ckpt + "/"], 0.75)}
    for way, (flags, estimate) in ways.items():
        folder = tmp_path / way
        assert cli.main([*common, *flags, "--out", str(folder)]) == 0
        run = record(folder)
        assert (run["epoch"], run["experiment"], run["checkpoint_uri"]) == (2, "x", flags[1]
                                                                             if way == "folder" else ckpt)
        scored(folder, estimate)
        store = tmp_path / f"{way}.parquet"
        capsys.readouterr()
        row = recorded(folder, store)
        assert f"of {out}, lang rkt, epoch 2" in capsys.readouterr().err
        assert (row["model"], row["revision"], row["experiment"], row["epoch"]) == (out, TAG, "x", 2), way
        outputs = [{"out": out, "given": [out], "rows": manifest.read(out)}]
        assert pass_at_1(str(store), outputs, "me/m").scores == {TAG: estimate}, way


def gen(bench, out, *flags):
    return cli.main(["generate", "--benchmark", bench[0], "--backend", "replay", "--replay-source",
                     bench[1], "--n", "2", "--out", str(out), *flags])


def test_the_dag_command_line_and_the_bare_one_write_the_same_run_record(bench, tmp_path):
    """multiplt_finetune's evaluations pass the manifest row's --epoch and --experiment; a
    researcher's `generate --model OUT --revision TAG` now records the same labels."""
    out = training_output(tmp_path / "train")
    assert gen(bench, tmp_path / "bare", "--model", out, "--revision", TAG) == 0
    assert gen(bench, tmp_path / "dag", "--model", out, "--revision", TAG, "--epoch", "2",
               "--experiment", "x") == 0
    bare, dag = record(tmp_path / "bare"), record(tmp_path / "dag")
    assert bare == dag and (bare["epoch"], bare["experiment"]) == (2, "x")


@pytest.mark.parametrize("flags, message", [
    (["--epoch", "0"], "--epoch 0 contradicts the checkpoint: rkt-x-epoch2 of {out} is epoch 2 in its "
                       "manifest; leave --epoch out (a checkpoint's run takes its manifest's) or give 2"),
    (["--epoch", "3"], "--epoch 3 contradicts the checkpoint: rkt-x-epoch2 of {out} is epoch 2"),
    (["--experiment", "y"], "--experiment y contradicts the checkpoint: rkt-x-epoch2 of {out} is "
                            "experiment x in its manifest"),
])
@pytest.mark.parametrize("way", ["revision", "folder"])
def test_a_label_that_contradicts_the_manifest_is_refused_before_any_work(bench, tmp_path, capsys,
                                                                          flags, message, way):
    out = training_output(tmp_path / "train")
    model = ["--model", out, "--revision", TAG] if way == "revision" else [
        "--model", storage.join(out, "checkpoints", TAG)]
    assert gen(bench, tmp_path / "run", *model, *flags) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message.format(out=out) in err, err
    assert not (tmp_path / "run").exists()
    evaluate = ["evaluate", "--lang", "rkt", "--out", str(tmp_path / "eval"), "--backend", "replay",
                "--replay-source", bench[1], *model, *flags]
    assert cli.main(evaluate) == 2  # before a benchmark is built
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message.format(out=out) in err, err
    assert not (tmp_path / "eval").exists()


def test_a_checkpoint_folder_its_manifest_does_not_list_is_a_plain_model(bench, tmp_path):
    """A folder under checkpoints/ of a tag the manifest lacks (one still being written) keeps the
    labels given, as any model folder."""
    out = training_output(tmp_path / "train")
    other = storage.join(out, "checkpoints", "rkt-x-epoch3")
    assert gen(bench, tmp_path / "run", "--model", other, "--epoch", "3") == 0
    run = record(tmp_path / "run")
    assert (run["model"], run["epoch"], run["experiment"]) == (other, 3, None)
    assert not {"checkpoint_uri", "training_output", "checkpoint_tag"} & set(run)


def test_an_older_checkpoint_run_without_an_epoch_is_recorded_with_a_warning(bench, tmp_path, capsys):
    """A run record written before generate took the manifest's labels: recorded as epoch 0, with
    a warning saying how to label it."""
    import yaml

    out = tmp_path / "run"
    assert gen(bench, out, "--model", "m", "--limit", "1") == 0
    path = out / "_multiplt_run.yaml"
    path.write_text(yaml.safe_dump({**record(out), "checkpoint_uri": "s3://b/o/checkpoints/t"}))
    scored(out, 0.5, n=2)
    capsys.readouterr()
    row = recorded(out, tmp_path / "s.parquet")
    err = capsys.readouterr().err
    assert row["epoch"] == 0
    assert ("WARNING multiplt.results: " in err and "the run record names the checkpoint "
            "s3://b/o/checkpoints/t but no epoch" in err and "record it with --epoch N (and "
            "--experiment X)" in err), err
