"""Bad input to `multiplt publish`: clear errors before anything is written or sent (no Hub needed)."""

from __future__ import annotations

import json

import pytest

from multiplt import cli
from multiplt.errors import MultipltError
from multiplt.hub.bundle import Bundle
from multiplt.hub.checkpoints import publish_checkpoints
from multiplt.hub.dataset import publish_dataset
from multiplt.hub.results import publish_results

TAG = "rkt-multiplt-epoch1"


@pytest.fixture(autouse=True)
def a_token(monkeypatch):
    """Publications that send are refused without a token before anything is read: these tests
    check what comes after (a dry run needs none)."""
    monkeypatch.setenv("HF_TOKEN", "hf_unit_test_token")


def write_dataset(root) -> str:
    import polars as pl

    (root / "data").mkdir(parents=True)
    pl.DataFrame({"content": ["#lang racket\n(define (f x) x)\n"] * 2}).write_parquet(
        root / "data" / "rkt-00000-of-00001.parquet")
    return str(root)


def write_training_output(root) -> str:
    root.mkdir(parents=True)
    row = {"uri": str(root / "epoch1"), "epoch": 1, "step": 10, "tag": TAG, "eval_loss": 1.0,
           "lang": "rkt", "experiment": "multiplt", "base": "org/tiny", "tokenizer": "org/tiny"}
    (root / "manifest.jsonl").write_text(json.dumps(row) + "\n")
    return str(root)


def files_under(path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_dry_run_into_an_existing_file_is_a_clear_error(tmp_path, capsys):
    src = write_dataset(tmp_path / "ds")
    target = tmp_path / "dry"
    target.write_text("keep me")
    assert cli.main(["publish", "dataset", "--from", src, "--repo", "me/ds", "--dry-run", str(target)]) == 2
    assert f"{target} is a file, not a folder" in capsys.readouterr().err
    assert target.read_text() == "keep me"


def test_dry_run_checks_every_target_before_writing_any(tmp_path):
    src = write_dataset(tmp_path / "ds")
    target = tmp_path / "dry"
    (target / "README.md").mkdir(parents=True)  # the card would go there; data/ sorts first
    with pytest.raises(MultipltError, match=r"README.md is a folder"):
        publish_dataset(src, "me/ds", dry_run=str(target))
    assert files_under(target) == ["README.md"]  # data/ was not written, nor the mark


def test_bundle_write_to_below_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "a.txt").write_text("a")
    with Bundle() as bundle:
        bundle.add_file("data/a.txt", str(tmp_path / "a.txt"))
        with pytest.raises(MultipltError, match=r"/file is a file, not a folder"):
            bundle.write_to(str(tmp_path / "file" / "sub"))


@pytest.mark.parametrize("target", ["s3://bucket/dr", "foo://bucket/dr"])
def test_dry_run_to_a_non_local_target_is_refused(tmp_path, monkeypatch, capsys, target):
    src = write_dataset(tmp_path / "ds")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["publish", "dataset", "--from", src, "--repo", "me/ds", "--dry-run", target]) == 2
    err = capsys.readouterr().err
    assert target in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no local `s3:` folder


def test_a_results_store_that_does_not_exist_is_an_error(tmp_path):
    out = write_training_output(tmp_path / "train")
    with pytest.raises(MultipltError, match=r"--results-store .*nosuch.parquet: no results store there"):
        publish_checkpoints([out], "me/m", results_store=str(tmp_path / "nosuch.parquet"))


@pytest.mark.parametrize("tags", ["", " , "])
def test_tags_naming_no_checkpoint_say_so(tmp_path, capsys, tags):
    out = write_training_output(tmp_path / "train")
    assert cli.main(["publish", "checkpoints", "--from", out, "--repo", "me/m", "--tags", tags]) == 2
    err = capsys.readouterr().err
    assert f"--tags {tags!r} names no checkpoint: give all, best or a comma-separated list" in err
    assert "no checkpoint not in" not in err


def test_unknown_tags_still_name_the_known_ones(tmp_path):
    out = write_training_output(tmp_path / "train")
    with pytest.raises(MultipltError, match=rf"nope not in the manifests; the outputs have: {TAG}"):
        publish_checkpoints([out], "me/m", tags=f"nope,{TAG}")


def test_two_outputs_with_one_tag_are_refused_before_any_upload(tmp_path, capsys):
    """Two bases trained under one experiment name both have rkt-multiplt-epoch1: publishing both
    to one repo would commit one, fail to tag the other and leave main on an untagged commit."""
    a, b = write_training_output(tmp_path / "a"), write_training_output(tmp_path / "b")
    assert cli.main(["publish", "checkpoints", "--from", a, "--from", b, "--repo", "me/m"]) == 2
    err = capsys.readouterr().err
    assert f"tag {TAG} is in two --from outputs ({a} and {b})" in err
    assert "nothing was uploaded" in err


def test_publishing_a_foreign_parquet_as_results_is_refused(tmp_path):
    import polars as pl

    store = tmp_path / "foreign.parquet"
    pl.DataFrame({"x": [1]}).write_parquet(store)
    with pytest.raises(MultipltError, match="not a results store"):
        publish_results(str(store), "me/board")


def test_an_empty_license_is_refused_before_anything_is_written(tmp_path, capsys):
    src = write_dataset(tmp_path / "ds")
    out = tmp_path / "dry"
    assert cli.main(["publish", "dataset", "--from", src, "--repo", "me/ds", "--dry-run", str(out),
                     "--license", " "]) == 2
    assert "--license is empty" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("revision,problem", [
    ("", "it is empty"), ("../x", "it contains '..'"), ("a..b", "it contains '..'"),
    ("/main", "it starts or ends with '/'"), ("my branch", "it contains a space"),
    ("a\nb", "it contains a control character"), ("a~1", "it contains '~'"), ("a:b", "it contains ':'"),
    ("a.lock", "it contains a part ending in '.lock'"), (".hidden", "it contains a part starting with '.'"),
    ("a//b", "it contains an empty part"), ("v1.", "it ends with '.'"), ("@", "'@' alone is no branch name"),
    ("x" * 256, "it is over 255 bytes")])
def test_a_bad_revision_is_refused_before_anything_is_written(tmp_path, capsys, revision, problem):
    """The Hub refuses such a branch only at the push: refused up front, dry run included."""
    src = write_dataset(tmp_path / "ds")
    out = tmp_path / "dry"
    assert cli.main(["publish", "dataset", "--from", src, "--repo", "me/ds", "--dry-run", str(out),
                     "--revision", revision]) == 2
    err = capsys.readouterr().err
    assert f"bad --revision {revision!r}: {problem}" in err and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("revision", ["main", "refs/pr/1", "release/v1.0", "exp_2-b"])
def test_good_revisions_pass(revision):
    from multiplt.hub.repo_id import check_revision

    assert check_revision(revision) == revision


@pytest.mark.parametrize("license,hint", [
    ("not a license!!", ""), ("mit\nother: x", ""), ("Apache-2.0", " (did you mean 'apache-2.0'?)"),
    ("mit ", ""), ("mit\n", ""), ("x" * 65, "")])
@pytest.mark.parametrize("command", ["dataset", "checkpoints", "results"])
def test_a_bad_license_is_refused_by_every_publish_command(tmp_path, capsys, license, hint, command):
    src = write_dataset(tmp_path / "ds")
    out = tmp_path / "dry"
    argv = {"dataset": ["--from", src, "--dry-run", str(out)],
            "checkpoints": ["--from", write_training_output(tmp_path / "train")],
            "results": ["--store", str(tmp_path / "store.parquet")]}[command]
    assert cli.main(["publish", command, "--repo", "me/x", *argv, "--license", license]) == 2
    err = capsys.readouterr().err
    assert f"bad --license {license!r}: a Hub license id is lower case letters" in err
    assert err.endswith(f"or other{hint}\n") and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("license", ["apache-2.0", "mit", "cc-by-4.0", "bigcode-openrail-m", "openrail++",
                                     "other", "lgpl-2.1", "cc0-1.0"])
def test_hub_license_ids_pass(license):
    from multiplt.hub.repo_id import check_license

    assert check_license(license) == license


def test_a_dry_run_again_removes_what_a_push_would_delete_and_rewrites_nothing(tmp_path):
    import os

    import polars as pl

    src = write_dataset(tmp_path / "ds")
    pl.DataFrame({"content": ["local x = 1\n"]}).write_parquet(
        tmp_path / "ds" / "data" / "lua-00000-of-00001.parquet")
    out = tmp_path / "dry"
    publish_dataset(src, "me/ds", dry_run=str(out))
    assert (out / "data" / "lua-00000-of-00001.parquet").exists()
    stamps = {p: os.stat(p).st_mtime_ns for p in out.rglob("*") if p.is_file()}
    publish_dataset(src, "me/ds", dry_run=str(out))  # the same files: nothing copied again
    assert {p: os.stat(p).st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamps
    (tmp_path / "ds" / "data" / "lua-00000-of-00001.parquet").unlink()
    publish_dataset(src, "me/ds", dry_run=str(out))
    assert files_under(out) == [".multiplt-dry-run.json", "README.md", "data", "data/racket-00000-of-00001.parquet"]


def test_a_dry_run_never_touches_a_folder_it_did_not_write(tmp_path, capsys):
    """A folder holding another dataset (or anything no dry run of this repo wrote) is refused
    before a file is written: a dry run removes the data files a push would delete."""
    import json

    src = write_dataset(tmp_path / "ds")
    other = tmp_path / "other"
    (other / "data").mkdir(parents=True)
    (other / "README.md").write_text("my own card")
    (other / "data" / "racket-00000-of-00001.parquet").write_text("mine")
    before = {p: p.read_bytes() for p in other.rglob("*") if p.is_file()}
    assert cli.main(["publish", "dataset", "--from", src, "--repo", "me/ds", "--dry-run", str(other)]) == 2
    assert "holds files no dry run wrote" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in other.rglob("*") if p.is_file()} == before
    # an earlier dry run of another repo: refused too; of this repo: rewritten
    out = tmp_path / "dry"
    publish_dataset(src, "me/other", dry_run=str(out))
    assert json.loads((out / ".multiplt-dry-run.json").read_text()) == {"repo": "me/other"}
    with pytest.raises(MultipltError, match="holds a dry run of me/other"):
        publish_dataset(src, "me/ds", dry_run=str(out))
    publish_dataset(src, "me/other", dry_run=str(out))
    empty = tmp_path / "empty"
    empty.mkdir()
    publish_dataset(src, "me/ds", dry_run=str(empty))
    assert (empty / "README.md").exists()


def test_a_dry_run_into_the_dataset_folder_is_refused(tmp_path):
    src = write_dataset(tmp_path / "ds")
    for target in (src, str(tmp_path / "ds" / "preview")):
        with pytest.raises(MultipltError, match="is the dataset folder or inside it"):
            publish_dataset(src, "me/ds", dry_run=target)
    assert files_under(tmp_path / "ds") == ["data", "data/rkt-00000-of-00001.parquet"]


@pytest.mark.parametrize("tokenizer,config,expected", [
    (None, None, ("org/base", "v1")), ("org/tok", None, ("org/tok", None)), ("SELF", None, ("org/base", "v1")),
    ("SELF", {"tokenizer": ""}, ("org/base", "v1")),
    # trained with --tokenizer: that one, which the training config names
    ("SELF", {"tokenizer": "org/trained-with"}, ("org/trained-with", None))])
def test_a_checkpoint_without_tokenizer_files_gets_the_training_tokenizer(tmp_path, monkeypatch, tokenizer,
                                                                          config, expected):
    """Newer manifest rows name the checkpoint itself as its tokenizer; when its files are missing
    the training tokenizer is the one to add (the training config's --tokenizer, else the base
    model's), never the checkpoint (which has none)."""
    import transformers

    from multiplt.hub import checkpoints

    asked = []

    class Fake:
        def save_pretrained(self, folder):
            import os

            os.makedirs(folder, exist_ok=True)
            open(os.path.join(folder, "tokenizer.json"), "w").write("{}")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained",
                        staticmethod(lambda name, *a, **k: asked.append((name, k.get("revision"))) or Fake()))
    row = {"tag": TAG, "uri": str(tmp_path / "ckpt"), "base": "org/base", "base_revision": "v1",
           "tokenizer": str(tmp_path / "ckpt") if tokenizer == "SELF" else tokenizer}
    files = checkpoints._base_tokenizer(row, str(tmp_path / "tok"), config)
    assert asked == [expected] and list(files) == ["tokenizer.json"]


def test_a_corrupt_base_tokenizer_is_one_error_before_anything_is_uploaded(tmp_path, capsys, monkeypatch):
    """A checkpoint without tokenizer files gets the base model's; a base whose tokenizer.json is
    truncated is one error naming that file, before the Hub is contacted."""
    import torch
    from safetensors.torch import save_file

    from multiplt.hub import publish
    from multiplt.models.tiny import train_tokenizer

    base = tmp_path / "base"
    train_tokenizer(["(define (f x) x)\n"] * 20, 300).save_pretrained(base)
    tokenizer_json = base / "tokenizer.json"
    tokenizer_json.write_bytes(tokenizer_json.read_bytes()[:200])
    ckpt = tmp_path / "train" / "checkpoints" / TAG
    ckpt.mkdir(parents=True)
    (ckpt / "config.json").write_text("{}")
    (ckpt / "_multiplt_train.yaml").write_text("config: {}\n")
    save_file({"w": torch.zeros(2, dtype=torch.bfloat16)}, str(ckpt / "model.safetensors"))
    row = {"uri": str(ckpt), "epoch": 1, "step": 10, "tag": TAG, "eval_loss": 1.0, "lang": "rkt",
           "experiment": "multiplt", "base": str(base), "base_revision": None, "tokenizer": str(ckpt)}
    (tmp_path / "train" / "manifest.jsonl").write_text(json.dumps(row) + "\n")
    monkeypatch.setattr(publish, "client_for", lambda *a, **k: pytest.fail("the Hub was contacted"))
    assert cli.main(["publish", "checkpoints", "--from", str(tmp_path / "train"), "--repo", "me/m"]) == 2
    err = capsys.readouterr().err
    assert f"cannot load the tokenizer of {str(base)!r}: {tokenizer_json} is corrupt: not valid JSON" in err
    assert err.count("error:") == 1 and "Traceback" not in err
