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
    # the replay backend loads no tokenizer: nothing says what it holds
    assert folder.TOKENIZER_IDENTITY not in folder.read_run(str(out))
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


# ---- multiplt evaluate --tokenizer-revision: checked and recorded as generate's ----------------
def evaluate(tmp_path, model, *extra):
    """`multiplt evaluate` of `model` on a one-problem benchmark (put where evaluate looks for its
    built benchmark); execute and score are generate's neighbours, not what is tested here."""
    benchmarks = tmp_path / "benchmarks"
    benchmarks.mkdir(exist_ok=True)
    storage.write_jsonl(str(benchmarks / "humaneval-rkt.jsonl"), [
        {"name": "HumanEval_0_add", "language": "rkt", "prompt": "#lang racket\n(define (add x y)\n",
         "tests": "", "stop_tokens": ["\n(define "]}])
    return cli.main(["evaluate", "--lang", "rkt", "--out", str(tmp_path / "eval"), "--benchmarks",
                     str(benchmarks), "--model", model, "--n", "1", "--max-new-tokens", "4", *extra])


@pytest.fixture
def no_execution(monkeypatch):
    from multiplt.evaluation import passk
    from multiplt.execution import executor

    monkeypatch.setattr(executor, "execute", lambda *a, **k: None)
    monkeypatch.setattr(passk, "score", lambda *a, **k: [])


def test_evaluate_loads_and_records_the_tokenizer_at_tokenizer_revision(test_hub, tiny_model, tmp_path,
                                                                        no_execution):
    """As generate's: the tiny model's tokenizer at one commit, a corrupt one on main since."""
    good = tokenizer_repo(test_hub, "org/tok", {name: open(os.path.join(tiny_model, name), "rb").read()
                                                for name in TOKENIZER_FILES})
    tokenizer_repo(test_hub, "org/tok", {"tokenizer.json": b'{"truncated": '})
    assert evaluate(tmp_path, tiny_model, "--tokenizer", "org/tok", "--tokenizer-revision", good) == 0
    [run_folder] = [p for p in (tmp_path / "eval").iterdir() if p.name.startswith("humaneval-rkt-")]
    run = folder.read_run(str(run_folder))
    assert (run["tokenizer"], run["tokenizer_revision"], run["tokenizer_resolved_commit"]) == (
        "org/tok", good, good)
    resolved = [p for m, p in test_hub.requests if m == "GET" and "/resolve/" in p]
    assert resolved and all(f"/resolve/{good}/" in p for p in resolved)


def test_evaluate_refuses_a_tokenizer_revision_as_generate_does(test_hub, tiny_model, tmp_path, capsys,
                                                                monkeypatch):
    """One error line, before any benchmark is built or run folder made."""
    from multiplt.benchmarks import build

    tokenizer_repo(test_hub, "org/tok", {"tokenizer.json": b"{}"})
    for extra, message in (
            (["--tokenizer-revision", "v1"], "--tokenizer-revision 'v1' needs --tokenizer (a Hub "
                                             "tokenizer); the model's own tokenizer is loaded at --revision"),
            (["--tokenizer", "s3://bucket/tok", "--tokenizer-revision", "v1"],
             "--tokenizer-revision 'v1' is for a Hub tokenizer; --tokenizer 's3://bucket/tok' is a "
             "local path or storage URI, which has no revisions"),
            (["--tokenizer", "org/tok", "--tokenizer-revision", " "],
             "--tokenizer-revision is empty; give a Hub branch, tag or commit, or leave it out"),
            (["--tokenizer", "org/tok", "--tokenizer-revision", "v9"],
             "tokenizer org/tok: revision 'v9' not found on the Hub")):
        assert evaluate(tmp_path, tiny_model, *extra) == 2
        err = capsys.readouterr().err
        assert err == f"multiplt evaluate: error: {message}\n", err
        assert not (tmp_path / "eval").exists()
    # the flags are checked before an unbuilt benchmark is built
    monkeypatch.setattr(build, "build_benchmark", lambda *a, **k: pytest.fail("a benchmark was built"))
    assert cli.main(["evaluate", "--lang", "rkt", "--out", str(tmp_path / "eval"), "--benchmarks",
                     str(tmp_path / "none"), "--model", tiny_model, "--tokenizer-revision", "v1"]) == 2
    assert "needs --tokenizer" in capsys.readouterr().err


# ---- tokenizer_resolved_commit: the commit a Hub --tokenizer was loaded at -----------------------
def test_the_run_record_names_the_commit_a_hub_tokenizer_was_loaded_at(test_hub, tiny_model, tmp_path):
    """As `resolved_commit` names the model's: without --tokenizer-revision the record said
    `tokenizer: org/tok` and nothing of which commit was loaded. The commit is the folder's
    `tokenizer_identity`, as the model's is its model_identity: the run after the tokenizer's main
    moved is refused (test_tokenizer_identity.py), and resumes once main is back at it."""
    files = {name: open(os.path.join(tiny_model, name), "rb").read() for name in TOKENIZER_FILES}
    first = tokenizer_repo(test_hub, "org/tok", files)
    bench = str(tmp_path / "bench.jsonl")
    storage.write_jsonl(bench, [{"name": "HumanEval_0_add", "language": "rkt",
                                 "prompt": "#lang racket\n(define (add x y)\n", "tests": "",
                                 "stop_tokens": ["\n(define "]}])
    out = str(tmp_path / "run")
    common = ["generate", "--benchmark", bench, "--model", tiny_model, "--tokenizer", "org/tok",
              "--max-new-tokens", "4", "--out", out]
    assert cli.main([*common, "--n", "1"]) == 0
    run = folder.read_run(out)
    assert (run["tokenizer"], run["tokenizer_resolved_commit"]) == ("org/tok", first)
    assert "tokenizer_revision" not in run and run["resolved_commit"] is None  # a local model
    # no weights were asked for: the tokenizer's files only
    assert not [p for m, p in test_hub.requests if "/resolve/" in p and p.endswith((".safetensors", ".bin"))]
    assert run[folder.TOKENIZER_IDENTITY] == f"commit:{first}"
    tokenizer_repo(test_hub, "org/tok", {**files, "extra.txt": b"x"})
    assert cli.main([*common, "--n", "2"]) == 2
    test_hub.repo("model", "org/tok").branches["main"] = first
    assert cli.main([*common, "--n", "2"]) == 0
    run = folder.read_run(out)
    assert (run["n"], run["tokenizer_resolved_commit"], run["complete"]) == (2, first, True)
    # the model's own tokenizer (no --tokenizer): the model's resolved_commit says it; no field
    plain = str(tmp_path / "plain")
    assert cli.main(["generate", "--benchmark", bench, "--model", tiny_model, "--n", "1",
                     "--max-new-tokens", "4", "--out", plain]) == 0
    assert "tokenizer_resolved_commit" not in folder.read_run(plain)
    assert folder.TOKENIZER_IDENTITY not in folder.read_run(plain)  # model_identity covers it


def test_the_openai_backend_records_its_hub_tokenizers_commit(test_hub, tmp_path):
    from tests.support.completions_server import CompletionsServer
    from tests.unit.generation.test_special_tokens import tokenizer

    tokenizer().save_pretrained(tmp_path / "tok")
    files = {p.name: p.read_bytes() for p in (tmp_path / "tok").iterdir()}
    commit = tokenizer_repo(test_hub, "org/tok", files)
    bench = str(tmp_path / "bench.jsonl")
    storage.write_jsonl(bench, [{"name": "HumanEval_0_f", "language": "rkt", "prompt": "(define (f x)\n",
                                 "tests": "", "stop_tokens": ["\n(define"]}])
    server = CompletionsServer(models=["m"]).start()
    try:
        server.record("(define (f x)\n", ["  x)"])
        out = str(tmp_path / "run")
        assert cli.main(["generate", "--benchmark", bench, "--backend", "openai", "--api-base",
                         server.url, "--model", "m", "--tokenizer", "org/tok", "--n", "1",
                         "--out", out]) == 0
    finally:
        server.stop()
    run = folder.read_run(out)
    assert (run["tokenizer"], run["tokenizer_resolved_commit"]) == ("org/tok", commit)
    # its special ids end the completions: the tokenizer is the folder's, as with the other backends
    assert run[folder.TOKENIZER_IDENTITY] == f"commit:{commit}"
