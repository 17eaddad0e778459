"""A run folder's `model_identity`: what the model (or replay source) held when its first samples
were drawn, compared on every later run into the folder. Before it, a folder's identity was
the model's *name*: a local model folder overwritten with other weights, a replay file
rewritten, or a Hub model whose `main` moved between two runs resumed the folder (`--n 2`, then
`--n 4`) and mixed the samples of two models, recorded as `complete: true` under one name. Now
such a resume is one error line, exit 2, nothing written; a folder written before the field
existed takes the identity of the next run that draws samples."""

from __future__ import annotations

import os
import shutil

import pytest
import yaml

from multiplt import cli, storage
from multiplt.generation import driver, folder, model_source
from multiplt.generation.replay import read_replay

BENCH_ROWS = [{"name": f"HumanEval_{i}_add", "language": "rkt",
               "prompt": f"#lang racket\n(define (add{i} x y)\n", "tests": "",
               "stop_tokens": ["\n(define "]} for i in range(2)]


def snapshot(out) -> dict:
    """Every file of a folder and its bytes: what "nothing written" compares."""
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def record(out) -> dict:
    return folder.read_run(str(out))


def changed_weights(path) -> None:
    """The model folder `path` with other weights: one tensor of its model.safetensors moved (as
    a model built with another seed, or another epoch's checkpoint, differs; it still loads)."""
    from safetensors.torch import load_file, save_file

    weights = os.path.join(path, "model.safetensors")
    tensors = load_file(weights)
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 0.5
    save_file(tensors, weights + ".new", metadata={"format": "pt"})
    os.replace(weights + ".new", weights)


@pytest.fixture
def bench_file(tmp_path) -> str:
    uri = str(tmp_path / "bench-add.jsonl")  # beside conftest's `bench` (bench.jsonl)
    storage.write_jsonl(uri, BENCH_ROWS)
    return uri


def generate(bench: str, out, model: str, n: int, *extra) -> int:
    return cli.main(["generate", "--benchmark", bench, "--model", model, "--n", str(n), "--seed", "7",
                     "--temperature", "0.8", "--max-new-tokens", "4", "--out", str(out), *extra])


# ---- a local model folder --------------------------------------------------------------------
def test_a_local_model_swapped_since_is_refused_before_it_loads(tiny_model, bench_file, tmp_path,
                                                                 capsys, monkeypatch):
    """The reviewer's repro: `cp -r TINY swap/m`, generate --n 2, other weights into swap/m,
    generate --n 4: it was accepted and drew 4 more samples per problem from the other model."""
    model = tmp_path / "swap" / "m"
    shutil.copytree(tiny_model, model)
    out = tmp_path / "g"
    assert generate(bench_file, out, str(model), 2) == 0
    first = record(out)
    # the content digest of the folder the samples came from: a copy of it has the same one
    assert first[folder.MODEL_IDENTITY] == model_source.content_digest(str(model)) == \
        model_source.content_digest(tiny_model)
    assert first[folder.MODEL_IDENTITY].startswith("sha256:") and first["resolved_commit"] is None

    changed_weights(model)
    swapped = model_source.content_digest(str(model))
    assert swapped != first[folder.MODEL_IDENTITY]
    before = snapshot(out)
    capsys.readouterr()
    with monkeypatch.context() as m:  # refused before the backend loads any weights
        m.setattr(driver, "make_backend", lambda *a, **k: pytest.fail("the model was loaded"))
        assert generate(bench_file, out, str(model), 4) == 2
    err = capsys.readouterr().err
    assert err == (f"multiplt generate: error: {out} was generated from model {model} at "
                   f"{first[folder.MODEL_IDENTITY]} (model_identity in _multiplt_run.yaml), but it is "
                   f"now {swapped}: resuming would mix samples of two models in one folder; use "
                   "another --out folder, or restore what the folder was made with\n")
    assert snapshot(out) == before

    # the model it was made with, restored: the folder resumes, and says what made its samples
    shutil.rmtree(model)
    shutil.copytree(tiny_model, model)
    assert generate(bench_file, out, str(model), 4) == 0
    run = record(out)
    assert (run["n"], run["complete"], run[folder.MODEL_IDENTITY]) == (4, True, first[folder.MODEL_IDENTITY])


def test_the_content_digest_covers_config_tokenizer_and_weights_not_other_files(tiny_model, tmp_path):
    model = tmp_path / "m"
    shutil.copytree(tiny_model, model)
    base = model_source.content_digest(str(model))
    (model / "README.md").write_text("notes")  # no part of what loads
    (model / "_multiplt_train.yaml").write_text("epoch: 1\n")
    assert model_source.content_digest(str(model)) == base
    for name in ("config.json", "tokenizer.json"):
        saved = (model / name).read_bytes()
        (model / name).write_bytes(saved.replace(b"}", b" }", 1))
        assert model_source.content_digest(str(model)) != base, name
        (model / name).write_bytes(saved)
    assert model_source.content_digest(str(model)) == base


def test_a_large_weights_file_is_read_by_its_size_header_and_edges(tmp_path, monkeypatch):
    """A weights file over 2 MiB is not read whole: its size, safetensors header and first and
    last MiB stand for it (a 15B checkpoint is digested in milliseconds)."""
    import json

    monkeypatch.setattr(model_source, "EDGE", 16)
    header = json.dumps({"t": {"dtype": "F32", "shape": [100], "data_offsets": [0, 400]}}).encode()
    body = bytes(range(256)) + bytes(144)
    path = tmp_path / "model.safetensors"

    def digest(data: bytes) -> str:
        path.write_bytes(len(header).to_bytes(8, "little") + header + data)
        return model_source.content_digest(str(tmp_path))

    base = digest(body)
    assert digest(body[:200] + b"\xff" + body[201:]) == base  # the middle: not read
    assert digest(body[:-1] + b"\xff") != base  # the last bytes
    assert digest(body + b"\0") != base  # the size
    assert digest(body[:-1]) != base
    header = header.replace(b"F32", b"F16")  # the header, beyond the first EDGE bytes
    assert digest(body) != base


# ---- a replay source ---------------------------------------------------------------------------
def replay_run(bench, out, source, n: int) -> int:
    uri, _ = bench
    return cli.main(["generate", "--benchmark", uri, "--out", str(out), "--backend", "replay",
                     "--replay-source", source, "--model", "replayed", "--n", str(n)])


def test_a_replay_file_rewritten_since_is_refused(bench, tmp_path, capsys):
    """Samples 0-1 from the file as it was, then the file rewritten: --n 4 appended samples 2-3
    of the new file to them."""
    _, source = bench
    out = tmp_path / "run"
    assert replay_run(bench, out, source, 2) == 0
    made = record(out)[folder.MODEL_IDENTITY]
    assert made == read_replay(source)[1] and made.startswith("sha256:")
    original = open(source, "rb").read()
    rows = storage.read_jsonl(source)
    storage.write_jsonl(source, [{**r, "completion": r["completion"] + " ; v2"} for r in rows])
    now = read_replay(source)[1]
    before = snapshot(out)
    capsys.readouterr()
    assert replay_run(bench, out, source, 4) == 2
    err = capsys.readouterr().err
    assert err == (f"multiplt generate: error: {out} was generated from replay source {source} at "
                   f"{made} (model_identity in _multiplt_run.yaml), but it is now {now}: resuming "
                   "would mix samples of two models in one folder; use another --out folder, or "
                   "restore what the folder was made with\n")
    assert snapshot(out) == before
    with open(source, "wb") as f:
        f.write(original)
    assert replay_run(bench, out, source, 4) == 0
    run = record(out)
    assert (run["n"], run["complete"], run[folder.MODEL_IDENTITY]) == (4, True, made)


def test_a_replay_folder_with_a_file_rewritten_is_refused(bench, tmp_path, capsys):
    """A folder source: the digest is of its completion files (not of its other files)."""
    uri, _ = bench
    source = tmp_path / "source"
    assert replay_run(bench, source, bench[1], 4) == 0  # a run folder of 4 samples per problem
    out = tmp_path / "run"
    assert replay_run(bench, out, str(source), 2) == 0
    made = record(out)[folder.MODEL_IDENTITY]
    (source / "_scores.csv").write_text("not a completion file\n")
    assert read_replay(str(source))[1] == made
    problem = storage.read_json(str(source / "HumanEval_0_f.json.gz"))
    storage.write_json(str(source / "HumanEval_0_f.json.gz"),
                       {**problem, "completions": problem["completions"][::-1]})
    before = snapshot(out)
    capsys.readouterr()
    assert replay_run(bench, out, str(source), 4) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"was generated from replay source {source} at {made}" in err, err
    assert snapshot(out) == before


# ---- a Hub model ------------------------------------------------------------------------------
def upload_tiny(hub, tiny_model, weights_changed: bool = False) -> str:
    """A new commit on main of the test Hub's ns/tiny (made if missing) holding the tiny model
    (with other weights when `weights_changed`); its oid."""
    repo = hub.repos.get(("model", "ns/tiny")) or hub.add_model("ns/tiny")
    files = {name: open(os.path.join(tiny_model, name), "rb").read() for name in os.listdir(tiny_model)}
    if weights_changed:
        data = bytearray(files["model.safetensors"])
        data[-1] ^= 0x01  # the last byte of the last tensor: still a loadable model
        files["model.safetensors"] = bytes(data)
    head = repo.commits[repo.branches["main"]]
    commit = repo.commit(head.oid, {**head.files, **{k: (v, False) for k, v in files.items()}}, "weights")
    repo.branches["main"] = commit.oid
    return commit.oid


def test_a_hub_model_whose_main_moved_is_refused(test_hub, tiny_model, bench_file, tmp_path, capsys,
                                                 monkeypatch):
    """No --revision: the folder was resumed from whatever main was then, and resolved_commit,
    written again by each run, named only the last commit."""
    first = upload_tiny(test_hub, tiny_model)
    out = tmp_path / "g"
    assert generate(bench_file, out, "ns/tiny", 2) == 0
    run = record(out)
    # the results row's resolved_commit is filled as before; the identity is that commit
    assert (run["resolved_commit"], run[folder.MODEL_IDENTITY]) == (first, f"commit:{first}")
    assert model_source.hub_commit("ns/tiny", None) == first

    moved = upload_tiny(test_hub, tiny_model, weights_changed=True)
    before = snapshot(out)
    capsys.readouterr()
    test_hub.requests.clear()
    assert generate(bench_file, out, "ns/tiny", 4) == 2
    err = capsys.readouterr().err
    assert err == (f"multiplt generate: error: {out} was generated from model ns/tiny at "
                   f"commit:{first} (model_identity in _multiplt_run.yaml), but it is now "
                   f"commit:{moved}: resuming would mix samples of two models in one folder; use "
                   "another --out folder, or restore what the folder was made with\n")
    assert snapshot(out) == before
    # refused on the Hub's word, before the new commit's weights were downloaded
    assert not [p for m, p in test_hub.requests if "/resolve/" in p]

    # main moving between that question and the download: the commit loaded is checked too
    with monkeypatch.context() as m:
        m.setattr(model_source, "hub_commit", lambda name, revision: first)
        assert generate(bench_file, out, "ns/tiny", 4) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and f"but it is now commit:{moved}: resuming would mix" in err
    assert snapshot(out) == before

    # main back at the folder's commit: resumed
    test_hub.repo("model", "ns/tiny").branches["main"] = first
    assert generate(bench_file, out, "ns/tiny", 4) == 0
    run = record(out)
    assert (run["n"], run["complete"], run["resolved_commit"], run[folder.MODEL_IDENTITY]) == (
        4, True, first, f"commit:{first}")


# ---- a folder written before model_identity existed ---------------------------------------------
def old_format(out) -> None:
    """The run record as generate wrote it before it kept model_identity (every other field the
    same)."""
    path = out / "_multiplt_run.yaml"
    data = yaml.safe_load(path.read_text())
    del data[folder.MODEL_IDENTITY]
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_an_old_format_folder_is_resumed_and_takes_this_runs_identity(bench, tiny_model, bench_file,
                                                                      tmp_path):
    """Not refused (its samples' model cannot be told), and from then on compared."""
    _, source = bench
    out = tmp_path / "replayed"
    assert replay_run(bench, out, source, 2) == 0
    old_format(out)
    assert folder.MODEL_IDENTITY not in record(out)
    assert replay_run(bench, out, source, 3) == 0
    run = record(out)
    assert (run["n"], run["complete"], run[folder.MODEL_IDENTITY]) == (3, True, read_replay(source)[1])

    model = tmp_path / "m"
    shutil.copytree(tiny_model, model)
    local = tmp_path / "local"
    assert generate(bench_file, local, str(model), 1) == 0
    old_format(local)
    changed_weights(model)  # what the old folder was made with cannot be known: accepted
    assert generate(bench_file, local, str(model), 2) == 0
    run = record(local)
    assert (run["n"], run["complete"]) == (2, True)
    assert run[folder.MODEL_IDENTITY] == model_source.content_digest(str(model))
    # a rerun with nothing to draw writes nothing, not even the identity
    old_format(local)
    before = snapshot(local)
    assert generate(bench_file, local, str(model), 2) == 0
    assert snapshot(local) == before


def test_a_rerun_with_the_same_model_writes_nothing(bench, tmp_path):
    """The identity does not change a rerun with nothing missing (writes nothing) nor a resume
    of the same source (accepted, the record's identity kept)."""
    _, source = bench
    out = tmp_path / "run"
    assert replay_run(bench, out, source, 2) == 0
    before = snapshot(out)
    assert replay_run(bench, out, source, 2) == 0
    assert snapshot(out) == before
