"""A Hub base model and a Hub dataset are pinned when a run starts: the commit each revision is at
then (`--base-revision`, `--dataset-revision`; none: the default branch) is what the run loads,
tokenizer and weights alike, however the branch moves meanwhile, and what it records
(`base_commit`, `dataset_commit` in the run config, each checkpoint's and the manifest rows; the
revisions stay as given). A resume whose Hub base or dataset has moved off the recorded commit
is refused like a changed setting, and resumes when given that commit as the revision. All on
the test Hub (tests/support/hub.py) with the tiny model."""

from __future__ import annotations

import io
import json

import pytest
import yaml

from multiplt import cli
from multiplt.errors import MultipltError
from multiplt.storage import manifest
from multiplt.training import data, loop
from multiplt.training.config import resolve, resume_differences

SPLIT_CARD = b"---\nconfigs:\n- config_name: default\n  data_files:\n  - split: racket\n    path: data/racket-*\n---\n"


def put(hub, repo, files: dict[str, bytes], title: str) -> str:
    """A commit on `repo`'s main over its head's files (as an upload makes it); its oid."""
    with hub.lock:
        head = repo.commits[repo.branches["main"]]
        commit = repo.commit(head.oid, {**head.files, **{p: (b, False) for p, b in files.items()}}, title)
        repo.branches["main"] = commit.oid
    return commit.oid


def hub_model(hub, tiny_model, name: str = "ns/tiny"):
    """The tiny model's files as the Hub repo `name`; (repo, the commit holding them)."""
    import pathlib

    repo = hub.add_model(name)
    files = {p.name: p.read_bytes() for p in pathlib.Path(tiny_model).iterdir() if p.is_file()}
    return repo, put(hub, repo, files, "the tiny model")


def parquet(column: str, values: list[str]) -> bytes:
    import polars as pl

    buf = io.BytesIO()
    pl.DataFrame({column: values}).write_parquet(buf)
    return buf.getvalue()


def documents(n: int = 40) -> list[str]:
    return [f"(define (f{i} x) (+ x {i * 37}))" for i in range(n)]


def hub_dataset(hub, name: str = "ns/rkt"):
    """A dataset repo with a racket split: tag v1 at a commit of usable rows, main moved on since
    to rows without a `content` column; (repo, v1's commit, main's commit)."""
    with hub.lock:
        repo = hub.create_repo("dataset", name)
    v1 = put(hub, repo, {"README.md": SPLIT_CARD,
                         "data/racket-00000-of-00001.parquet": parquet("content", documents())}, "v1")
    repo.tags["v1"] = v1
    main = put(hub, repo, {"data/racket-00000-of-00001.parquet": parquet("text", documents())}, "renamed")
    return repo, v1, main


def train_argv(out, dataset: str, base: str, *more: str) -> list[str]:
    return ["train", "--recipe", "tiny", "--dataset", dataset, "--base", base, "--lang", "rkt",
            "--experiment", "x", "--out", str(out), "--seq-len", "16", *more]


@pytest.fixture
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny shapes: fastest single-threaded on busy cores
    yield
    torch.set_num_threads(before)


def test_a_hub_base_and_dataset_load_at_the_commits_the_run_records(test_hub, tiny_model, tmp_path,
                                                                     monkeypatch, one_thread):
    import datasets

    base_repo, base_commit = hub_model(test_hub, tiny_model)
    _, v1, _ = hub_dataset(test_hub)
    asked = []
    real_load_dataset, real_load_texts = datasets.load_dataset, data.load_texts

    def load_dataset(path, *args, **kwargs):
        asked.append((path, kwargs.get("split"), kwargs.get("revision")))
        return real_load_dataset(path, *args, **kwargs)

    def load_texts(*args, **kwargs):
        # pinned already: main of the base moves on to weights that do not load, before they load
        put(test_hub, base_repo, {"model.safetensors": b"no weights", "config.json": b"{}"}, "broken")
        return real_load_texts(*args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setattr(data, "load_texts", load_texts)
    out = tmp_path / "out"
    assert cli.main(train_argv(out, "ns/rkt", "ns/tiny", "--dataset-revision", "v1")) == 0

    assert asked == [("ns/rkt", "racket", v1)]  # the tag's commit, not main (no `content` there)
    run = yaml.safe_load((out / "_multiplt_train.yaml").read_text())
    assert (run["base_commit"], run["config"]["base_revision"]) == (base_commit, "")
    assert (run["dataset_commit"], run["config"]["dataset_revision"]) == (v1, "v1")
    rows = manifest.read(str(out))
    assert [(r["base_revision"], r["base_commit"], r["dataset_commit"]) for r in rows] == [(None, base_commit, v1)]
    tagged = yaml.safe_load((out / "checkpoints" / "rkt-x-epoch1" / "_multiplt_train.yaml").read_text())
    assert (tagged["base_commit"], tagged["dataset_commit"]) == (base_commit, v1)


def test_a_local_base_and_dataset_record_no_commit(tiny_model, tmp_path, one_thread):
    (tmp_path / "racket.jsonl").write_text("".join(json.dumps({"content": d}) + "\n" for d in documents()))
    out = tmp_path / "out"
    assert cli.main(train_argv(out, str(tmp_path / "racket.jsonl"), tiny_model)) == 0
    run = yaml.safe_load((out / "_multiplt_train.yaml").read_text())
    assert (run["base_commit"], run["dataset_commit"]) == (None, None)
    assert [(r["base_commit"], r["dataset_commit"]) for r in manifest.read(str(out))] == [(None, None)]
    # the code and libraries that trained (multiplt.provenance), as every stage's record names them
    from multiplt import provenance

    assert run["provenance"]["code_version"] == provenance.code_version()["code_version"]
    assert set(run["provenance"]["libraries"]) >= {"torch", "transformers", "accelerate"}


def test_materialize_pins_a_hub_base_to_its_commit(test_hub, tiny_model, tmp_path):
    repo, commit = hub_model(test_hub, tiny_model)
    repo.tags["v1"] = commit
    assert loop.materialize("ns/tiny", "", str(tmp_path)) == ("ns/tiny", commit)
    later = put(test_hub, repo, {"README.md": b"# tiny\n"}, "card")
    assert loop.materialize("ns/tiny", "", str(tmp_path)) == ("ns/tiny", later)
    assert loop.materialize("ns/tiny", "v1", str(tmp_path)) == ("ns/tiny", commit)
    with pytest.raises(MultipltError, match=r"^base model ns/tiny: --base-revision 'v9' not found on the Hub$"):
        loop.materialize("ns/tiny", "v9", str(tmp_path))
    with pytest.raises(MultipltError, match=r"^base model 'ns/none' not found on the Hub"):
        loop.materialize("ns/none", "", str(tmp_path))


@pytest.fixture
def stop_at_the_data(monkeypatch):
    """Stops a run where it would read its data (after the base and dataset are pinned)."""
    def stop(*args, **kwargs):
        raise MultipltError("STOP: would read the data")
    monkeypatch.setattr(data, "load_texts", stop)


def resumable(out, saved_config: dict, **commits) -> None:
    """`out` as a 2-epoch run of `saved_config` leaves it after epoch 1, with `commits` recorded."""
    out.mkdir()
    (out / "_multiplt_train.yaml").write_text(yaml.safe_dump({"config": saved_config, "precision": "fp32",
                                                              **commits}))
    (out / "manifest.jsonl").write_text(json.dumps(
        {"uri": str(out / "checkpoints" / "rkt-x-epoch1"), "tag": "rkt-x-epoch1", "epoch": 1,
         "lang": "rkt", "experiment": "x", "step": 1}) + "\n")


def test_a_resume_whose_hub_base_moved_is_refused(test_hub, tiny_model, tmp_path, capsys, stop_at_the_data):
    repo, first = hub_model(test_hub, tiny_model)
    (tmp_path / "racket.jsonl").write_text(json.dumps({"content": "(define x 1)"}) + "\n")
    out = tmp_path / "out"
    argv = train_argv(out, str(tmp_path / "racket.jsonl"), "ns/tiny", "--epochs", "2")
    assert cli.main([*argv, "--print-config"]) == 0
    resumable(out, yaml.safe_load(capsys.readouterr().out), base_commit=first, dataset_commit=None)
    moved = put(test_hub, repo, {"config.json": (repo.commits[first].files["config.json"][0] + b"\n")},
                "retrained")

    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert (f'{out} holds a run with different settings (base_commit: "{first}" there, "{moved}" now); '
            f"the base model ns/tiny has moved on the Hub since the run started (--base-revision (none: "
            f"the default branch)): resume it on the commit it started from with --base-revision {first}, "
            f"or use a new --out") in err
    assert "STOP" not in err
    # given that commit, the run resumes on it: the settings and the base check pass
    assert cli.main([*argv, "--base-revision", first]) == 2
    assert "STOP: would read the data" in capsys.readouterr().err
    # any other revision is a changed setting as before
    assert cli.main([*argv, "--base-revision", moved]) == 2
    assert f'base_revision: "" there, "{moved}" now' in capsys.readouterr().err


def test_a_resume_whose_hub_dataset_moved_is_refused(test_hub, tiny_model, tmp_path, capsys, stop_at_the_data):
    repo, v1, main = hub_dataset(test_hub)
    out = tmp_path / "out"
    argv = train_argv(out, "ns/rkt", tiny_model, "--epochs", "2")
    assert cli.main([*argv, "--print-config"]) == 0
    resumable(out, yaml.safe_load(capsys.readouterr().out), base_commit=None, dataset_commit=v1)

    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert (f'(dataset_commit: "{v1}" there, "{main}" now); the Hub dataset ns/rkt has moved on the Hub '
            f"since the run started (--dataset-revision (none: the default branch)): resume it on the "
            f"commit it started from with --dataset-revision {v1}, or use a new --out") in err
    assert cli.main([*argv, "--dataset-revision", v1]) == 2
    assert "STOP: would read the data" in capsys.readouterr().err


def test_dataset_revision_is_for_hub_datasets_and_old_run_configs_resume(tmp_path, capsys):
    (tmp_path / "racket.jsonl").write_text(json.dumps({"content": "(define x 1)"}) + "\n")
    argv = train_argv(tmp_path / "out", str(tmp_path / "racket.jsonl"), "ns/tiny", "--dataset-revision", "v1")
    assert cli.main(argv) == 2
    assert (f"error: --dataset-revision 'v1' is for a Hub dataset; --dataset {tmp_path / 'racket.jsonl'} is "
            f"a local path or storage URI, which has no revisions") in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    # a run config written before dataset_revision existed ran on the default branch: no difference
    required = dict(dataset="ns/rkt", base="ns/tiny", lang="rkt", experiment="x", out=str(tmp_path / "o"))
    saved = resolve("tiny", required).as_dict()
    del saved["dataset_revision"]
    assert resume_differences(saved, resolve("tiny", required)) == []
    assert resume_differences(saved, resolve("tiny", dict(required, dataset_revision="v1"))) == ["dataset_revision"]


def test_a_hub_dataset_that_is_not_there_is_one_line(test_hub, tiny_model, tmp_path, capsys):
    assert cli.main(train_argv(tmp_path / "out", "ns/none", tiny_model)) == 2
    err = capsys.readouterr().err
    assert ("error: cannot load Hub dataset 'ns/none' split 'racket': no such dataset on the Hub (nor a "
            "file or folder of that name here)") in err and "Traceback" not in err
    hub_dataset(test_hub)
    assert cli.main(train_argv(tmp_path / "out", "ns/rkt", tiny_model, "--dataset-revision", "v9")) == 2
    assert ("error: cannot load Hub dataset 'ns/rkt' split 'racket': --dataset-revision 'v9' not found on "
            "the Hub") in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_offline_a_hub_dataset_cached_at_another_commit_is_refused_not_loaded(test_hub, monkeypatch):
    """With HF_HUB_OFFLINE, `datasets` ignores the revision and loads the newest version it
    cached: training pinned to v1's commit would record it and train on main's rows. load_texts
    checks the commit the rows came from (the cache folder is named by it) and refuses."""
    import sys

    import datasets

    repo, v1, _ = hub_dataset(test_hub)
    put(test_hub, repo, {"data/racket-00000-of-00001.parquet": parquet("content", documents(90))}, "more")
    assert len(data.load_texts("ns/rkt", "racket", revision=v1)) == 40  # online: v1's rows
    datasets.load_dataset("ns/rkt", split="racket")  # main's rows cached last
    import huggingface_hub.constants as hub_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if hasattr(sys.modules["datasets.config"], name):
            monkeypatch.setattr(sys.modules["datasets.config"], name, True)
    with pytest.raises(MultipltError, match=f"cannot load Hub dataset 'ns/rkt' split 'racket' at {v1}: "
                                            "the `datasets` cache holds another version of it"):
        data.load_texts("ns/rkt", "racket", revision=v1)


def test_other_processes_take_the_main_process_pins_and_its_error(monkeypatch, tmp_path):
    """Under DDP only the main process asks the Hub (loop._pin_sources); another process takes the
    commits, or the error, that the main process broadcast, and raises that same error."""
    def no_hub(*args, **kwargs):
        raise AssertionError("a process other than the main one asked the Hub")

    monkeypatch.setattr(loop, "hub_base_commit", no_hub)
    monkeypatch.setattr(data, "hub_dataset_commit", no_hub)
    config = resolve("tiny", {"dataset": "ns/rkt", "base": "ns/tiny", "lang": "rkt", "experiment": "x",
                              "out": str(tmp_path / "out")})
    sent = []

    def broadcast(objects):
        sent.append(objects[0])
        return [["b" * 40, "d" * 40, None]]

    assert loop._pin_sources(config, str(tmp_path), False, broadcast) == ("ns/tiny", "b" * 40, "d" * 40)
    assert sent == [[None, None, None]]  # it answers nothing of its own
    refusal = MultipltError("base model 'ns/tiny' not found on the Hub")
    with pytest.raises(MultipltError, match="^base model 'ns/tiny' not found on the Hub$"):
        loop._pin_sources(config, str(tmp_path), False, lambda objects: [[None, None, refusal]])
