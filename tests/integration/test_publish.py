"""`multiplt publish dataset|checkpoints|results` against the test Hub through the real
huggingface_hub client: repos, commits, tags, cards, idempotent reruns, retry on 500, no retry
on 403, bad input, and checkpoints that load by tag with from_pretrained and generate."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from multiplt import cli, storage
from tests.support.hub import TOKEN

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WRITES = ("POST", "PUT", "DELETE")


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setenv("MULTIPLT_HUB_BACKOFF", "0.01")


def write_dataset(root) -> str:
    import polars as pl

    rows = {"lua": ["local function f(x)\n  return x\nend\n"] * 3,
            "rkt": ["#lang racket\n(define (f x) x)\n"] * 2}
    for lang, docs in rows.items():
        storage.write_parquet(f"{root}/data/{lang}-00000-of-00001.parquet",
                              pl.DataFrame({"content": docs, "sha1": [str(i) for i in range(len(docs))]}))
    storage.write_json(f"{root}/funnel.json", {"lua": {"stage": "translate", "in": 9, "kept": 3,
                                                       "dropped": {"tests failed": 6}}})
    tests = f"file://{root}-tests"  # the stage before: its funnel is followed through the config
    storage.write_json(f"{tests}/funnel.json", {"stage": "testgen", "in": 20, "kept": 9,
                                                "dropped": {"coverage below 90%": 11}})
    for code in ("lua", "rkt"):
        for shard in ("0-of-2", "1-of-2"):
            storage.write_json(f"{root}/config/{code}-{shard}.json", {
                "tests": tests, "out": f"file://{root}", "language": code, "backend": "vllm",
                "model": "bigcode/starcoderbase-15b", "temperature": 0.8, "top_p": 0.95, "n": 50,
                "shard": shard})
    return f"file://{root}"


def writes(hub) -> list:
    return [r for r in hub.requests if r[0] in WRITES and "validate-yaml" not in r[1]]


def test_dataset_splits_card_and_idempotent_rerun(test_hub, tmp_path, capsys):
    from huggingface_hub import HfApi, hf_hub_download

    src = write_dataset(tmp_path / "ds")
    assert cli.main(["publish", "dataset", "--from", src, "--repo", "ns/multiplt-data"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["splits"] == {"lua": 3, "racket": 2} and first["uploaded"] == 3
    api = HfApi()
    files = sorted(api.list_repo_files("ns/multiplt-data", repo_type="dataset"))
    assert files == [".gitattributes", "README.md", "data/lua-00000-of-00001.parquet",
                     "data/racket-00000-of-00001.parquet"]
    card = open(hf_hub_download("ns/multiplt-data", "README.md", repo_type="dataset")).read()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["license"] == "bigcode-openrail-m"
    assert meta["configs"][0]["data_files"] == [{"split": "lua", "path": "data/lua-*"},
                                                {"split": "racket", "path": "data/racket-*"}]
    assert meta["dataset_info"]["splits"] == [{"name": "lua", "num_examples": 3},
                                              {"name": "racket", "num_examples": 2}]
    assert "tests failed" in card and "bigcode/starcoderbase-15b" in card and "load_dataset" in card
    assert "coverage below 90%" in card  # the test-generation stage's funnel, one stage back
    assert "| lua | bigcode/starcoderbase-15b | vllm | 50 | 0.8 | 0.95 |" in card  # shards once
    assert card.count("| rkt | bigcode/starcoderbase-15b") == 1
    commits = len(api.list_repo_commits("ns/multiplt-data", repo_type="dataset"))
    record = storage.read_json(f"{src}/published.json")  # the UI's Datasets page links it
    assert record["repo"] == "ns/multiplt-data" and record["revision"] == "main"
    assert record["commit"] == first["commit"] and record["url"].endswith("/datasets/ns/multiplt-data")

    before = len(writes(test_hub))
    assert cli.main(["publish", "dataset", "--from", src, "--repo", "ns/multiplt-data"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["up_to_date"] and again["uploaded"] == 0
    assert len(writes(test_hub)) == before  # nothing sent
    assert len(api.list_repo_commits("ns/multiplt-data", repo_type="dataset")) == commits

    # a split that shrank away is deleted on the next publication
    os.remove(tmp_path / "ds" / "data" / "rkt-00000-of-00001.parquet")
    assert cli.main(["publish", "dataset", "--from", src, "--repo", "ns/multiplt-data"]) == 0
    assert "data/racket-00000-of-00001.parquet" not in api.list_repo_files("ns/multiplt-data",
                                                                           repo_type="dataset")


def test_dataset_loads_with_datasets_from_the_hub(test_hub, tmp_path):
    datasets = pytest.importorskip("datasets")
    src = write_dataset(tmp_path / "ds")
    assert cli.main(["publish", "dataset", "--from", src, "--repo", "ns/loadable"]) == 0
    ds = datasets.load_dataset("ns/loadable", split="racket")
    assert ds.num_rows == 2 and ds[0]["content"].startswith("#lang racket")


def test_dataset_from_s3(test_hub, tmp_path, s3_bucket, capsys):
    local = write_dataset(tmp_path / "ds")
    for name in ("data/lua-00000-of-00001.parquet", "data/rkt-00000-of-00001.parquet", "funnel.json",
                 "config/lua-0-of-2.json"):
        storage.copy(f"{local}/{name}", f"{s3_bucket}/ds/{name}")
    assert cli.main(["publish", "dataset", "--from", f"{s3_bucket}/ds", "--repo", "ns/from-s3"]) == 0
    assert json.loads(capsys.readouterr().out)["splits"] == {"lua": 3, "racket": 2}
    files = test_hub.repos[("dataset", "ns/from-s3")].resolve("main").files
    assert files["data/racket-00000-of-00001.parquet"][0] == open(
        tmp_path / "ds" / "data" / "rkt-00000-of-00001.parquet", "rb").read()
    assert b"tests failed" in files["README.md"][0]  # the funnel, read from S3


def test_dataset_dry_run_writes_what_would_be_uploaded_and_sends_nothing(test_hub, tmp_path, monkeypatch):
    src = write_dataset(tmp_path / "ds")
    monkeypatch.delenv("HF_TOKEN")  # a dry run needs no token
    out = tmp_path / "dry"
    assert cli.main(["publish", "dataset", "--from", src, "--repo", "ns/x", "--dry-run", str(out)]) == 0
    found = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert found == [".multiplt-dry-run.json", "README.md", "data/lua-00000-of-00001.parquet",
                     "data/racket-00000-of-00001.parquet"]
    assert test_hub.requests == []
    assert not (tmp_path / "ds" / "published.json").exists()  # nothing was published


def test_revision_branch(test_hub, tmp_path):
    from huggingface_hub import HfApi

    src = write_dataset(tmp_path / "ds")
    assert cli.main(["publish", "dataset", "--from", src, "--repo", "ns/br", "--revision", "v2"]) == 0
    api = HfApi()
    assert "README.md" in api.list_repo_files("ns/br", repo_type="dataset", revision="v2")
    assert "README.md" not in api.list_repo_files("ns/br", repo_type="dataset")


def test_a_500_is_retried_then_succeeds(test_hub, tmp_path, caplog):
    src = write_dataset(tmp_path / "ds")
    test_hub.fail("POST", r"/commit/main$", 500, times=1)
    assert cli.main(["publish", "dataset", "--from", src, "--repo", "ns/flaky"]) == 0
    commits = [r for r in test_hub.requests if r[0] == "POST" and r[1].endswith("/commit/main")]
    assert len(commits) == 2  # the failed one and its retry
    assert len(test_hub.repos[("dataset", "ns/flaky")].commits) == 2  # initial + one publication


def test_a_commit_whose_answer_was_lost_is_not_repeated(test_hub, tmp_path, capsys):
    """The Hub applies the commit but answers 500: the retry gets 412 (parent moved on); the
    command sees the branch holds exactly its files and succeeds without a second commit."""
    src = write_dataset(tmp_path / "ds")
    test_hub.fail("POST", r"/commit/main$", 500, times=1, after=True)
    assert cli.main(["publish", "dataset", "--from", src, "--repo", "ns/lost"]) == 0
    assert len(test_hub.repos[("dataset", "ns/lost")].commits) == 2  # initial + one publication
    assert "landed" in capsys.readouterr().err


def test_a_403_fails_at_once_with_exit_2(test_hub, tmp_path, capsys):
    src = write_dataset(tmp_path / "ds")
    test_hub.fail("POST", r"/commit/main$", 403, times=5)
    assert cli.main(["publish", "dataset", "--from", src, "--repo", "ns/forbidden"]) == 2
    commits = [r for r in test_hub.requests if r[0] == "POST" and r[1].endswith("/commit/main")]
    assert len(commits) == 1
    assert "HTTP 403" in capsys.readouterr().err


def test_hub_down_is_a_platform_error_after_retries(test_hub, tmp_path, monkeypatch):
    monkeypatch.setenv("MULTIPLT_HUB_RETRIES", "3")
    src = write_dataset(tmp_path / "ds")
    test_hub.fail("POST", r"/commit/main$", 503, times=10)
    assert cli.main(["publish", "dataset", "--from", src, "--repo", "ns/down"]) == 3
    commits = [r for r in test_hub.requests if r[0] == "POST" and r[1].endswith("/commit/main")]
    assert len(commits) == 3
    # the rerun once the Hub is back finishes the job
    test_hub.faults.clear()
    assert cli.main(["publish", "dataset", "--from", src, "--repo", "ns/down"]) == 0
    assert len(test_hub.repos[("dataset", "ns/down")].commits) == 2


@pytest.mark.parametrize("argv, message", [
    (["dataset", "--from", "SRC", "--repo", "https://huggingface.co/ns/x"], "OWNER/NAME"),
    (["dataset", "--from", "SRC", "--repo", "justaname"], "OWNER/NAME"),
    (["dataset", "--from", "SRC", "--repo", "a/b/c"], "OWNER/NAME"),
    (["dataset", "--from", "EMPTY", "--repo", "ns/x"], "not a dataset folder"),
    (["checkpoints", "--from", "SRC", "--repo", "ns/x"], "not a training output"),
    (["results", "--store", "EMPTY/none.parquet", "--repo", "ns/x"], "no results store"),
])
def test_bad_input_exit_2_nothing_uploaded(test_hub, tmp_path, capsys, argv, message):
    src = write_dataset(tmp_path / "ds")
    (tmp_path / "empty").mkdir()
    argv = [a.replace("SRC", src).replace("EMPTY", f"file://{tmp_path}/empty") for a in argv]
    assert cli.main(["publish", *argv]) == 2
    assert message in capsys.readouterr().err
    assert writes(test_hub) == [] and not test_hub.repos


def test_missing_token_exit_2_nothing_uploaded(test_hub, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "no-token"))
    assert cli.main(["publish", "dataset", "--from", write_dataset(tmp_path / "ds"),
                     "--repo", "ns/x"]) == 2
    assert "HF_TOKEN" in capsys.readouterr().err
    assert test_hub.requests == []


def test_results_store_published_and_rerun_uploads_nothing(test_hub, tmp_path, capsys):
    import polars as pl
    from huggingface_hub import hf_hub_download

    from multiplt.results.schema import polars_schema

    store = str(tmp_path / "results.parquet")
    rows = [{"run_id": f"r{e}", "dataset": "humaneval-lua", "model": "out", "revision": f"lua-x-epoch{e}",
             "lang": "lua", "epoch": e, "k": 1, "estimate": 0.1 * e, "num_problems": 2,
             "created_at": "2026-01-01T00:00:00+00:00"} for e in (1, 2)]
    storage.write_parquet(store, pl.DataFrame(rows).with_columns(
        [pl.lit(None, d).alias(c) for c, d in polars_schema().items() if c not in rows[0]]))
    assert cli.main(["publish", "results", "--store", store, "--repo", "ns/leaderboard"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 2
    path = hf_hub_download("ns/leaderboard", "data/results-00000-of-00001.parquet", repo_type="dataset")
    assert pl.read_parquet(path)["estimate"].to_list() == [0.1, 0.2]
    card = open(hf_hub_download("ns/leaderboard", "README.md", repo_type="dataset")).read()
    assert "lua-x-epoch2" in card and "0.2000" in card
    before = len(writes(test_hub))
    assert cli.main(["publish", "results", "--store", store, "--repo", "ns/leaderboard"]) == 0
    assert json.loads(capsys.readouterr().out)["up_to_date"]
    assert len(writes(test_hub)) == before


def test_token_never_in_any_log_line(test_hub, tmp_path):
    """Every line the command writes (verbose, with huggingface_hub's request debugging on, and
    through a failure) is searched for the token."""
    src = write_dataset(tmp_path / "ds")
    env = {**os.environ, "HF_DEBUG": "1", "PYTHONPATH": REPO}
    ok = subprocess.run([sys.executable, "-m", "multiplt", "-v", "publish", "dataset", "--from", src,
                         "--repo", "ns/secret"], env=env, capture_output=True, text=True, timeout=120)
    test_hub.fail("POST", r"/commit/main$", 403)
    (tmp_path / "ds" / "funnel.json").write_text("{}")
    bad = subprocess.run([sys.executable, "-m", "multiplt", "-v", "publish", "dataset", "--from", src,
                          "--repo", "ns/secret"], env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert bad.returncode == 2
    output = ok.stdout + ok.stderr + bad.stdout + bad.stderr
    assert "/commit/main" in output  # the debug log did show the requests
    assert TOKEN not in output
