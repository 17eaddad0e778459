"""A run folder's `tokenizer_identity`: what a separate `--tokenizer` held when the folder's first
samples were drawn, compared on every later run into the folder, as `model_identity` is the
model's. Before it, a local or storage `--tokenizer` whose files were replaced between two runs
into one folder (`--n 1`, then `--n 2`), or a Hub one whose `main` moved, resumed the folder and
appended samples of another tokenizer (other prompt tokens) to it. Now such a resume is one error
line, exit 2, nothing written; a folder written before the field existed takes the identity of
the next run that draws samples."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import yaml

from multiplt import storage
from multiplt.generation import driver, folder, model_source

from tests.unit.generation.test_model_identity import BENCH_ROWS, generate, record, snapshot
from tests.unit.generation.test_tokenizer_revision import tokenizer_repo

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


@pytest.fixture
def bench_file(tmp_path) -> str:
    """test_model_identity's two-problem benchmark."""
    uri = str(tmp_path / "bench-add.jsonl")
    storage.write_jsonl(uri, BENCH_ROWS)
    return uri


def tokenizer_folder(tiny_model, path) -> str:
    """A folder of the tiny model's tokenizer files only (a separate --tokenizer)."""
    path.mkdir(parents=True)
    for name in TOKENIZER_FILES:
        shutil.copy(os.path.join(tiny_model, name), path / name)
    return str(path)


def replaced(data: bytes) -> bytes:
    """tokenizer.json's bytes written anew (another tokenizer's file, as far as its bytes say;
    it still loads)."""
    return json.dumps(json.loads(data), indent=1).encode()


def refusal(out, tokenizer, was: str, now: str) -> str:
    return (f"multiplt generate: error: {out} was generated with tokenizer {tokenizer} at {was} "
            f"(tokenizer_identity in _multiplt_run.yaml), but it is now {now}: resuming would mix "
            "samples of two tokenizers in one folder; use another --out folder, or restore what "
            "the folder was made with\n")


def no_backend(monkeypatch) -> None:
    monkeypatch.setattr(driver, "make_backend", lambda *a, **k: pytest.fail("the model was loaded"))


# ---- a local tokenizer folder -----------------------------------------------------------------
def test_a_local_tokenizer_replaced_since_is_refused_before_anything_loads(tiny_model, bench_file,
                                                                         tmp_path, capsys,
                                                                         monkeypatch):
    """The repro: generate --n 1 --tokenizer TOK, TOK's tokenizer.json replaced, generate --n 2
    into the same folder: it was accepted and drew the new samples with the other tokenizer."""
    tok = tokenizer_folder(tiny_model, tmp_path / "tok")
    out = tmp_path / "g"
    assert generate(bench_file, out, tiny_model, 1, "--tokenizer", tok) == 0
    first = record(out)
    made = first[folder.TOKENIZER_IDENTITY]
    assert made == model_source.tokenizer_digest(tok) and made.startswith("sha256:")
    assert first["tokenizer_resolved_commit"] is None  # a local folder: no commit to name
    assert first[folder.MODEL_IDENTITY] == model_source.content_digest(tiny_model)  # as before

    original = (tmp_path / "tok" / "tokenizer.json").read_bytes()
    (tmp_path / "tok" / "tokenizer.json").write_bytes(replaced(original))
    now = model_source.tokenizer_digest(tok)
    assert now != made
    before = snapshot(out)
    capsys.readouterr()
    with monkeypatch.context() as m:  # refused before the backend loads the model or tokenizer
        no_backend(m)
        assert generate(bench_file, out, tiny_model, 2, "--tokenizer", tok) == 2
    assert capsys.readouterr().err == refusal(out, tok, made, now)
    assert snapshot(out) == before

    # the tokenizer the folder was made with, restored: resumed, with the folder's identity
    (tmp_path / "tok" / "tokenizer.json").write_bytes(original)
    assert generate(bench_file, out, tiny_model, 2, "--tokenizer", tok) == 0
    run = record(out)
    assert (run["n"], run["complete"], run[folder.TOKENIZER_IDENTITY]) == (2, True, made)


def test_the_tokenizer_digest_reads_the_tokenizer_files_only(tiny_model, tmp_path):
    """A model folder given as --tokenizer: its weights and other files are no part of the
    tokenizer's digest (they are not read); its tokenizer and config files are."""
    model = tmp_path / "m"
    shutil.copytree(tiny_model, model)
    base = model_source.tokenizer_digest(str(model))
    assert base != model_source.content_digest(str(model))
    (model / "README.md").write_text("notes")
    (model / "model.safetensors").write_bytes(b"other weights")
    assert model_source.tokenizer_digest(str(model)) == base
    for name in ("tokenizer.json", "tokenizer_config.json", "config.json", "merges.txt",
                 "vocab.json", "tokenizer.model"):
        path = model / name
        saved = path.read_bytes() if path.exists() else None
        path.write_bytes(b"{}" if saved is None else saved + b" ")
        assert model_source.tokenizer_digest(str(model)) != base, name
        path.unlink() if saved is None else path.write_bytes(saved)
    assert model_source.tokenizer_digest(str(model)) == base


# ---- a storage URI ------------------------------------------------------------------------------
def test_a_storage_tokenizer_rewritten_since_is_refused(tiny_model, bench_file, s3_bucket, tmp_path,
                                                        capsys, monkeypatch):
    """Checked on the copy downloaded into the cache, before the model loads."""
    monkeypatch.setenv("MULTIPLT_CACHE_DIR", str(tmp_path / "cache"))
    uri = f"{s3_bucket}/tok"
    data = {name: open(os.path.join(tiny_model, name), "rb").read() for name in TOKENIZER_FILES}
    for name, content in data.items():
        storage.write_bytes(f"{uri}/{name}", content)
    out = tmp_path / "g"
    assert generate(bench_file, out, tiny_model, 1, "--tokenizer", uri) == 0
    made = record(out)[folder.TOKENIZER_IDENTITY]
    # the digest of the downloaded copy: a local copy of the same files has it
    local = tokenizer_folder(tiny_model, tmp_path / "local")
    assert made == model_source.tokenizer_digest(local)

    storage.write_bytes(f"{uri}/tokenizer.json", replaced(data["tokenizer.json"]))
    (tmp_path / "local" / "tokenizer.json").write_bytes(replaced(data["tokenizer.json"]))
    now = model_source.tokenizer_digest(local)
    before = snapshot(out)
    capsys.readouterr()
    with monkeypatch.context() as m:
        no_backend(m)
        assert generate(bench_file, out, tiny_model, 2, "--tokenizer", uri) == 2
    err = capsys.readouterr().err  # after the download's INFO line
    assert err.count("error:") == 1 and err.endswith(refusal(out, uri, made, now)), err
    assert snapshot(out) == before
    storage.write_bytes(f"{uri}/tokenizer.json", data["tokenizer.json"])
    assert generate(bench_file, out, tiny_model, 2, "--tokenizer", uri) == 0
    assert (record(out)["n"], record(out)[folder.TOKENIZER_IDENTITY]) == (2, made)


# ---- a Hub tokenizer ----------------------------------------------------------------------------
def test_a_hub_tokenizer_whose_main_moved_is_refused(test_hub, tiny_model, bench_file, tmp_path,
                                                     capsys, monkeypatch):
    """As a Hub model whose main moved: without --tokenizer-revision the folder was resumed with
    whatever main was then, and tokenizer_resolved_commit, written again by each run, named only
    the last commit."""
    files = {name: open(os.path.join(tiny_model, name), "rb").read() for name in TOKENIZER_FILES}
    first = tokenizer_repo(test_hub, "org/tok", files)
    out = tmp_path / "g"
    assert generate(bench_file, out, tiny_model, 1, "--tokenizer", "org/tok") == 0
    run = record(out)
    assert (run["tokenizer_resolved_commit"], run[folder.TOKENIZER_IDENTITY]) == (first, f"commit:{first}")

    moved = tokenizer_repo(test_hub, "org/tok", {"tokenizer.json": replaced(files["tokenizer.json"])})
    before = snapshot(out)
    capsys.readouterr()
    test_hub.requests.clear()
    assert generate(bench_file, out, tiny_model, 2, "--tokenizer", "org/tok") == 2
    assert capsys.readouterr().err == refusal(out, "org/tok", f"commit:{first}", f"commit:{moved}")
    assert snapshot(out) == before
    # refused on the Hub's word, before the new commit's files were downloaded
    assert not [p for m, p in test_hub.requests if "/resolve/" in p]

    # main moving between that question and the download: the commit loaded is checked too
    with monkeypatch.context() as m:
        m.setattr(model_source, "hub_commit", lambda name, revision: first)
        assert generate(bench_file, out, tiny_model, 2, "--tokenizer", "org/tok") == 2
    err = capsys.readouterr().err  # after the model's loading line
    assert err.count("error:") == 1 and err.endswith(
        refusal(out, "org/tok", f"commit:{first}", f"commit:{moved}")), err
    assert snapshot(out) == before

    # main back at the folder's commit: resumed
    test_hub.repo("model", "org/tok").branches["main"] = first
    assert generate(bench_file, out, tiny_model, 2, "--tokenizer", "org/tok") == 0
    run = record(out)
    assert (run["n"], run["complete"], run["tokenizer_resolved_commit"],
            run[folder.TOKENIZER_IDENTITY]) == (2, True, first, f"commit:{first}")


def test_a_tokenizer_revision_pinned_to_a_commit_resumes_after_main_moved(test_hub, tiny_model,
                                                                          bench_file, tmp_path, capsys):
    """What keeps a folder resumable while the tokenizer's main moves: --tokenizer-revision COMMIT
    from its first run. A pinned branch that moved is refused as main is."""
    files = {name: open(os.path.join(tiny_model, name), "rb").read() for name in TOKENIZER_FILES}
    first = tokenizer_repo(test_hub, "org/tok", files)
    pinned, branch = tmp_path / "pinned", tmp_path / "branch"
    assert generate(bench_file, pinned, tiny_model, 1, "--tokenizer", "org/tok",
                    "--tokenizer-revision", first) == 0
    assert generate(bench_file, branch, tiny_model, 1, "--tokenizer", "org/tok",
                    "--tokenizer-revision", "main") == 0
    moved = tokenizer_repo(test_hub, "org/tok", {"tokenizer.json": replaced(files["tokenizer.json"])})
    assert generate(bench_file, pinned, tiny_model, 2, "--tokenizer", "org/tok",
                    "--tokenizer-revision", first) == 0
    run = record(pinned)
    assert (run["n"], run["complete"], run[folder.TOKENIZER_IDENTITY]) == (2, True, f"commit:{first}")
    capsys.readouterr()
    assert generate(bench_file, branch, tiny_model, 2, "--tokenizer", "org/tok",
                    "--tokenizer-revision", "main") == 2
    assert capsys.readouterr().err == refusal(branch, "org/tok", f"commit:{first}", f"commit:{moved}")


# ---- a folder written before tokenizer_identity existed -----------------------------------------
def test_an_old_format_folder_is_resumed_and_takes_this_runs_tokenizer_identity(tiny_model, bench_file,
                                                                              tmp_path, capsys):
    tok = tokenizer_folder(tiny_model, tmp_path / "tok")
    out = tmp_path / "g"
    assert generate(bench_file, out, tiny_model, 1, "--tokenizer", tok) == 0
    path = out / "_multiplt_run.yaml"
    data = yaml.safe_load(path.read_text())
    del data[folder.TOKENIZER_IDENTITY]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    original = (tmp_path / "tok" / "tokenizer.json").read_bytes()
    (tmp_path / "tok" / "tokenizer.json").write_bytes(replaced(original))
    # what the old folder was made with cannot be known: accepted, and from then on compared
    assert generate(bench_file, out, tiny_model, 2, "--tokenizer", tok) == 0
    run = record(out)
    now = model_source.tokenizer_digest(tok)
    assert (run["n"], run["complete"], run[folder.TOKENIZER_IDENTITY]) == (2, True, now)
    (tmp_path / "tok" / "tokenizer.json").write_bytes(original)
    capsys.readouterr()
    assert generate(bench_file, out, tiny_model, 3, "--tokenizer", tok) == 2
    assert capsys.readouterr().err == refusal(out, tok, now, model_source.tokenizer_digest(tok))
