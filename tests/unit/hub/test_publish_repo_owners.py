"""Publications never take over a repo they should not write (test Hub): `--private` to a repo
that exists and is public is refused (its visibility is never changed), and `publish results`
and `publish dataset` refuse a repo that holds the other's data files instead of deleting them.
In each case nothing is sent to the Hub."""

from __future__ import annotations

import json

import pytest

from multiplt import cli, storage
from multiplt.errors import MultipltError

WRITES = ("POST", "PUT", "DELETE")


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setenv("MULTIPLT_HUB_BACKOFF", "0.01")


def write_dataset(root) -> str:
    import polars as pl

    storage.write_parquet(f"{root}/data/lua-00000-of-00001.parquet",
                          pl.DataFrame({"content": ["local function f(x)\n  return x\nend\n"] * 3}))
    return f"file://{root}"


def write_store(path) -> str:
    import polars as pl

    from multiplt.results.schema import polars_schema

    rows = [{"run_id": "r1", "model": "org/base", "revision": None, "lang": "lua", "epoch": 0, "k": 1,
             "estimate": 0.25, "num_problems": 4}]
    store = str(path)
    storage.write_parquet(store, pl.DataFrame(rows).with_columns(
        [pl.lit(None, d).alias(c) for c, d in polars_schema().items() if c not in rows[0]]))
    return store


def writes(hub) -> list:
    return [r for r in hub.requests if r[0] in WRITES and "validate-yaml" not in r[1]]


def files(hub, repo_id: str, rtype: str = "dataset") -> list[str]:
    repo = hub.repos[(rtype, repo_id)]
    return sorted(repo.commits[repo.branches["main"]].files)


def publish(*argv) -> int:
    return cli.main(["publish", *argv])


def error_lines(capsys) -> list[str]:
    """The command's error lines on stderr (its INFO log lines aside)."""
    return [line for line in capsys.readouterr().err.splitlines() if " INFO " not in line]


def test_private_is_refused_for_a_public_repo_and_its_visibility_kept(test_hub, tmp_path, capsys):
    src = write_dataset(tmp_path / "ds")
    store = write_store(tmp_path / "results.parquet")
    assert publish("dataset", "--from", src, "--repo", "ns/ds1") == 0
    assert publish("results", "--store", store, "--repo", "ns/board") == 0
    capsys.readouterr()
    before = len(writes(test_hub))
    for argv, rtype, repo in ((["dataset", "--from", src], "dataset", "ns/ds1"),
                              (["results", "--store", store], "dataset", "ns/board")):
        assert publish(*argv, "--repo", repo, "--private") == 2
        err = error_lines(capsys)
        assert len(err) == 1 and err[0].endswith(
            f"error: --private: the {rtype} repo {repo} exists and is public; nothing was uploaded (a "
            f"publication never changes an existing repo's visibility): make it private on the Hub (its "
            f"Settings, or HfApi().update_repo_settings('{repo}', private=True, repo_type='{rtype}')), or "
            f"publish without --private (in multiplt_publish: private false)"), err
        assert test_hub.repos[(rtype, repo)].private is False
    assert len(writes(test_hub)) == before  # nothing sent, the visibility not flipped
    # once the owner made it private, --private publishes (here: up to date, nothing to send)
    test_hub.repos[("dataset", "ns/ds1")].private = True
    assert publish("dataset", "--from", src, "--repo", "ns/ds1", "--private") == 0
    assert json.loads(capsys.readouterr().out)["up_to_date"] is True


def test_private_creates_a_new_repo_private_and_checks_model_repos_too(test_hub):
    from multiplt.hub.publish import client_for

    assert client_for("ns/new", "model", private=True).repo_id == "ns/new"
    assert test_hub.repos[("model", "ns/new")].private is True
    client_for("ns/new", "model", private=True)  # private already: fine
    test_hub.add_model("ns/open")
    client_for("ns/open", "model", private=False)  # no --private: a public repo is fine
    with pytest.raises(MultipltError, match="--private: the model repo ns/open exists and is public"):
        client_for("ns/open", "model", private=True)
    assert test_hub.repos[("model", "ns/open")].private is False


@pytest.mark.parametrize("command", ["dataset", "checkpoints", "results"])
def test_every_publish_help_says_a_public_repo_is_refused(command, capsys):
    with pytest.raises(SystemExit):
        cli.main(["publish", command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--private create the repo private; an existing repo must be private already: a public one " \
           "is refused (exit 2, nothing uploaded), its visibility is never changed" in text


def test_results_into_a_dataset_repo_is_refused_not_deleting_its_splits(test_hub, tmp_path, capsys):
    src = write_dataset(tmp_path / "ds")
    assert publish("dataset", "--from", src, "--repo", "ns/shared") == 0
    capsys.readouterr()
    held, before = files(test_hub, "ns/shared"), len(writes(test_hub))
    assert publish("results", "--store", write_store(tmp_path / "r.parquet"), "--repo", "ns/shared") == 2
    err = error_lines(capsys)
    assert len(err) == 1 and err[0].endswith(
        "error: --repo ns/shared holds data/lua-00000-of-00001.parquet, a data file `multiplt publish "
        "results` did not write (a dataset's split, from `multiplt publish dataset`?), which publishing "
        "the results there would delete; nothing was uploaded: publish the results to a dataset repo of "
        "their own"), err
    assert files(test_hub, "ns/shared") == held and len(writes(test_hub)) == before


def test_a_dataset_into_a_results_repo_is_refused_not_deleting_the_table(test_hub, tmp_path, capsys):
    assert publish("results", "--store", write_store(tmp_path / "r.parquet"), "--repo", "ns/board") == 0
    capsys.readouterr()
    held, before = files(test_hub, "ns/board"), len(writes(test_hub))
    assert "data/results-00000-of-00001.parquet" in held
    assert publish("dataset", "--from", write_dataset(tmp_path / "ds"), "--repo", "ns/board") == 2
    err = error_lines(capsys)
    assert len(err) == 1 and err[0].endswith(
        "error: --repo ns/board holds data/results-00000-of-00001.parquet, the results table of "
        "`multiplt publish results`, which publishing a dataset there would delete; nothing was "
        "uploaded: publish the dataset to a dataset repo of its own"), err
    assert files(test_hub, "ns/board") == held and len(writes(test_hub)) == before
    assert not (tmp_path / "ds" / "published.json").exists()


def test_each_publication_still_replaces_its_own_files(test_hub, tmp_path, capsys):
    """What a publication wrote before it still deletes: a dataset's split its folder no longer
    has, the results table it rewrites."""
    import os

    src = write_dataset(tmp_path / "ds")
    assert publish("dataset", "--from", src, "--repo", "ns/data") == 0
    import polars as pl

    storage.write_parquet(f"{src}/data/lua-00000-of-00002.parquet", pl.DataFrame({"content": ["x"]}))
    storage.write_parquet(f"{src}/data/lua-00001-of-00002.parquet", pl.DataFrame({"content": ["y"]}))
    os.remove(tmp_path / "ds" / "data" / "lua-00000-of-00001.parquet")
    capsys.readouterr()
    assert publish("dataset", "--from", src, "--repo", "ns/data") == 0
    assert json.loads(capsys.readouterr().out)["deleted"] == 1
    assert files(test_hub, "ns/data") == [".gitattributes", "README.md", "data/lua-00000-of-00002.parquet",
                                          "data/lua-00001-of-00002.parquet"]
