"""`generate --tokenizer-revision REV`: a Hub `--tokenizer` loaded at a given revision, as
`--revision` loads the model. Without it a Hub tokenizer was always loaded at whatever its
default branch was when generate ran, so two generates into one folder (or a rerun) could use
two tokenizers, and the run record did not say which. The revision is part of the folder's run
identity (a folder resumes only under its own), and the flag is refused, in one line, without
`--tokenizer` or for a local or storage-URI one. Against the test Hub (tests/hub_server.py)."""

from __future__ import annotations

import json
import os

import pytest

from multiplt import cli, storage
from multiplt.generation import folder, model_source

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def gen(bench, out, *extra, n: int = 2):
    uri, source = bench
    return cli.main(["generate", "--benchmark", uri, "--out", str(out), "--backend", "replay",
                     "--replay-source", source, "--n", str(n), *extra])


def tokenizer_repo(hub, repo_id: str, files: dict[str, bytes]) -> str:
    """A new commit on main of the test Hub's `repo_id` (made if missing) holding `files`; its sha."""
    repo = hub.repos.get(("model", repo_id)) or hub.add_model(repo_id)
    head = repo.commits[repo.branches["main"]]
    commit = repo.commit(head.oid, {**head.files, **{k: (v, False) for k, v in files.items()}},
                         "tokenizer files")
    repo.branches["main"] = commit.oid
    return commit.oid


def test_a_hub_tokenizer_is_resolved_at_its_revision(test_hub):
    first = tokenizer_repo(test_hub, "org/tok", {"tokenizer.json": b'{"v": 1}'})
    test_hub.repo("model", "org/tok").tags["v1"] = first
    main = tokenizer_repo(test_hub, "org/tok", {"tokenizer.json": b'{"v": 2}'})
    read = lambda ref: json.loads(open(os.path.join(ref.path, "tokenizer.json")).read())  # noqa: E731
    for revision, commit, version in ((None, main, 2), ("v1", first, 1), (first, first, 1)):
        ref = model_source.resolve_model("org/tok", revision, what="tokenizer")
        assert (ref.resolved_commit, read(ref)) == (commit, {"v": version}), revision


def test_generate_loads_the_tokenizer_at_tokenizer_revision(test_hub, tiny_model, tmp_path, capsys):
    """The tiny model's tokenizer at one commit, a corrupt one on main since: --tokenizer-revision
    loads the good one and the run record names it; without it main's is loaded (and refused)."""
    good = tokenizer_repo(test_hub, "org/tok", {name: open(os.path.join(tiny_model, name), "rb").read()
                                                for name in TOKENIZER_FILES})
    tokenizer_repo(test_hub, "org/tok", {"tokenizer.json": b'{"truncated": '})
    bench = str(tmp_path / "bench.jsonl")
    storage.write_jsonl(bench, [{"name": "HumanEval_0_add", "language": "rkt",
                                 "prompt": "#lang racket\n(define (add x y)\n", "tests": "",
                                 "stop_tokens": ["\n(define "]}])
    common = ["generate", "--benchmark", bench, "--model", tiny_model, "--tokenizer", "org/tok",
              "--n", "1", "--max-new-tokens", "4"]
    out = tmp_path / "pinned"
    assert cli.main([*common, "--tokenizer-revision", good, "--out", str(out)]) == 0
    run = folder.read_run(str(out))
    assert (run["tokenizer"], run["tokenizer_revision"]) == ("org/tok", good)
    assert [p for m, p in test_hub.requests if m == "GET" and "/resolve/" in p] and all(
        f"/resolve/{good}/" in p for m, p in test_hub.requests if m == "GET" and "/resolve/" in p)
    capsys.readouterr()
    assert cli.main([*common, "--out", str(tmp_path / "main")]) == 2  # main's tokenizer is corrupt
    assert "tokenizer.json" in capsys.readouterr().err
    assert not (tmp_path / "main").exists()


def test_a_folder_resumes_only_under_its_own_tokenizer_revision(test_hub, bench, tmp_path, capsys):
    """The revision is recorded and compared as --revision and --tokenizer are: a run into the
    folder with another tokenizer revision, or none (the default branch, whatever it is then),
    is refused naming the difference; the same one resumes it."""
    first = tokenizer_repo(test_hub, "org/tok", {"tokenizer.json": b"{}"})
    second = tokenizer_repo(test_hub, "org/tok", {"tokenizer.json": b'{"v": 2}'})
    out = tmp_path / "run"
    assert gen(bench, out, "--tokenizer", "org/tok", "--tokenizer-revision", first, n=1) == 0
    record = storage.read_text(str(out / "_multiplt_run.yaml"))
    assert folder.read_run(str(out))["tokenizer_revision"] == first
    capsys.readouterr()
    where = str(out / "_multiplt_run.yaml")
    for extra, asked in ((["--tokenizer-revision", second], repr(second)), ([], "None")):
        assert gen(bench, out, "--tokenizer", "org/tok", *extra) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and (
            f"{where} records a different run (tokenizer_revision: folder has {first!r}, this run "
            f"asks for {asked}); use another --out folder") in err, err
        assert storage.read_text(where) == record  # nothing written
    assert gen(bench, out, "--tokenizer", "org/tok", "--tokenizer-revision", first) == 0
    run = folder.read_run(str(out))
    assert (run["n"], run["tokenizer_revision"], run["complete"]) == (2, first, True)
    # a folder made without one is not resumed with one either
    plain = tmp_path / "plain"
    assert gen(bench, plain, "--tokenizer", "org/tok", n=1) == 0
    assert "tokenizer_revision" not in folder.read_run(str(plain))
    capsys.readouterr()
    assert gen(bench, plain, "--tokenizer", "org/tok", "--tokenizer-revision", first) == 2
    assert f"tokenizer_revision: folder has None, this run asks for {first!r}" in capsys.readouterr().err


@pytest.mark.parametrize("tokenizer,message", [
    (None, "--tokenizer-revision 'v1' needs --tokenizer (a Hub tokenizer); the model's own "
           "tokenizer is loaded at --revision"),
    ("LOCAL", "--tokenizer-revision 'v1' is for a Hub tokenizer; --tokenizer 'LOCAL' is a local "
              "path or storage URI, which has no revisions"),
    ("./tok", "--tokenizer-revision 'v1' is for a Hub tokenizer; --tokenizer './tok' is a local "
              "path or storage URI, which has no revisions"),
    ("s3://bucket/tok", "--tokenizer-revision 'v1' is for a Hub tokenizer; --tokenizer "
                        "'s3://bucket/tok' is a local path or storage URI, which has no revisions"),
    ("file:///models/tok", "--tokenizer-revision 'v1' is for a Hub tokenizer; --tokenizer "
                           "'file:///models/tok' is a local path or storage URI, which has no "
                           "revisions"),
])
def test_tokenizer_revision_without_a_hub_tokenizer_is_one_error(bench, tmp_path, capsys, tokenizer,
                                                                 message):
    local = tmp_path / "tok"
    local.mkdir()
    if tokenizer == "LOCAL":
        tokenizer, message = str(local), message.replace("LOCAL", str(local))
    out = tmp_path / "run"
    assert gen(bench, out, *(["--tokenizer", tokenizer] if tokenizer else []),
               "--tokenizer-revision", "v1") == 2
    err = capsys.readouterr().err
    assert err == f"multiplt generate: error: {message}\n"
    assert not out.exists()


def test_an_empty_tokenizer_revision_is_one_error(bench, tmp_path, capsys):
    assert gen(bench, tmp_path / "run", "--tokenizer", "org/tok", "--tokenizer-revision", "") == 2
    assert capsys.readouterr().err == ("multiplt generate: error: --tokenizer-revision is empty; give "
                                       "a Hub branch, tag or commit, or leave it out\n")
    assert not (tmp_path / "run").exists()
