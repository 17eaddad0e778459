"""`publish results` (test Hub): the published parquet names a checkpoint that `publish
checkpoints` published as the Hub does (model REPO, revision TAG) and carries none of the
deployment's places (storage URIs, absolute local paths, also as run folder names spell them);
the local store keeps them."""

from __future__ import annotations

import json

import pytest

from multiplt import cli, storage
from multiplt.evaluation.run_folder import run_folder_name, safe_part
from multiplt.hub.results import place_name, public_rows

PUBLISHED, UNPUBLISHED = "lua-multiplt-epoch1", "lua-multiplt-epoch2"


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setenv("MULTIPLT_HUB_BACKOFF", "0.01")


def store_row(model, revision, epoch, estimate, run_root, bench, **extra) -> dict:
    dataset = run_folder_name("humaneval", "lua", model, revision, 0.2)
    return {"run_id": f"{dataset}@0123456789ab", "dataset": dataset, "run_uri": f"{run_root}/{dataset}",
            "model": model, "revision": revision, "resolved_commit": None, "tokenizer": None,
            "experiment": "multiplt", "lang": "lua", "epoch": epoch, "benchmark": bench,
            "benchmark_sha256": "b" * 64, "selection": "", "backend": "replay", "seed": 0, "n": 2,
            "temperature": 0.2, "top_p": 0.95, "max_new_tokens": 128, "k": 1, "estimate": estimate,
            "num_problems": 4, "min_completions": 2, "max_completions": 2,
            "created_at": "2026-01-01T00:00:00+00:00", **extra}


def test_published_rows_name_hub_checkpoints_and_carry_no_deployment_paths(test_hub, tmp_path, capsys):
    import polars as pl
    from huggingface_hub import hf_hub_download

    from multiplt.results import read_store
    from multiplt.results.schema import polars_schema

    deploy = tmp_path / "deploy"
    out = deploy / "training" / "org_base-multiplt-lua"
    out.mkdir(parents=True)
    storage.write_json(str(out / "published.json"), {"repo": "ns/tuned", "tags": [PUBLISHED], "url": "u"})
    bench = f"file://{deploy}/benchmarks/humaneval-lua.jsonl"
    rows = [store_row("org/base", None, 0, 0.1, "s3://private-bucket/evaluate", bench),
            store_row(str(out), PUBLISHED, 1, 0.3, str(deploy / "evaluate"), bench,
                      tokenizer=f"{out}/checkpoints/{PUBLISHED}", base_model="org/base"),
            store_row(str(out), UNPUBLISHED, 2, 0.4, str(deploy / "evaluate"), bench,
                      tokenizer=f"{out}/checkpoints/{UNPUBLISHED}", base_model=str(deploy / "models" / "b"))]
    store = str(tmp_path / "results.parquet")
    storage.write_parquet(store, pl.DataFrame(rows, schema=polars_schema()))

    assert cli.main(["publish", "results", "--store", store, "--repo", "ns/board"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 3
    published = pl.read_parquet(hf_hub_download("ns/board", "data/results-00000-of-00001.parquet",
                                                repo_type="dataset"))
    card = open(hf_hub_download("ns/board", "README.md", repo_type="dataset")).read()
    text = json.dumps(published.to_dicts()) + card
    for private in (str(tmp_path), "s3://", "file://", "private_bucket", "deploy_training"):
        assert private not in text, private
    assert "run_uri" not in published.columns
    by_epoch = {r["epoch"]: r for r in published.to_dicts()}
    tuned = by_epoch[1]
    assert (tuned["model"], tuned["revision"]) == ("ns/tuned", PUBLISHED)
    assert tuned["tokenizer"] == place_name(f"{out}/checkpoints/{PUBLISHED}")
    assert tuned["tokenizer"].startswith(f"{PUBLISHED}~")
    assert tuned["dataset"] == "humaneval-lua-ns_tuned-lua_multiplt_epoch1-0.2"
    assert tuned["run_id"] == f"{tuned['dataset']}@0123456789ab"
    unpublished = place_name(str(out))
    assert unpublished.startswith("org_base-multiplt-lua~") and len(unpublished) == len("org_base-multiplt-lua~") + 8
    assert (by_epoch[2]["model"], by_epoch[2]["revision"]) == (unpublished, UNPUBLISHED)
    assert by_epoch[2]["dataset"] == f"humaneval-lua-{safe_part(unpublished)}-lua_multiplt_epoch2-0.2"
    assert by_epoch[2]["base_model"] == place_name(str(deploy / "models" / "b"))
    base = by_epoch[0]
    assert (base["model"], base["dataset"], base["base_model"]) == ("org/base", rows[0]["dataset"], None)
    assert {r["benchmark"] for r in published.to_dicts()} == {"humaneval-lua.jsonl"}
    # the card: the checkpoint's line names it as the Hub does; the benchmark is still named
    assert f"| humaneval | 4 | ns/tuned | {PUBLISHED} | lua | 1 | 0.2 | 0.3000 | ns/tuned@{PUBLISHED} |" in card
    assert f"| humaneval | 4 | {unpublished} | {UNPUBLISHED} | lua | 2 | 0.2 | 0.4000 |  |" in card
    assert "`run_uri`" not in card and "`base_model`" in card
    # the local store keeps its places: they are how the platform finds the runs and checkpoints
    local = read_store(store)
    assert sorted(local["run_uri"].to_list()) == sorted(r["run_uri"] for r in rows)
    assert str(out) in local["model"].to_list()


def public(rows: list[dict]) -> list[dict]:
    import polars as pl

    from multiplt.results.schema import polars_schema

    schema = polars_schema()
    table = pl.DataFrame([{c: r.get(c) for c in schema} for r in rows], schema=schema)
    return public_rows(table, {}).to_dicts()


def test_two_places_of_one_folder_name_stay_two_models_on_the_card():
    """One experiment trained under two roots: two training outputs named alike are two models in
    the published rows (and two pass@1 lines on the card), not one whose other run vanishes."""
    from multiplt.hub.cards import results_summary

    a, b = "/data/training/a/sc1b-multiplt-lua", "s3://bkt/training/b/sc1b-multiplt-lua/"
    bench, base = "humaneval-lua.jsonl", "/models/sc1b"
    rows = [store_row(a, PUBLISHED, 1, 0.3, "/data/evaluate", bench, base_model=base),
            store_row(b, PUBLISHED, 1, 0.6, "/data/evaluate", bench, base_model=base),
            store_row(base, None, 0, 0.1, "/data/evaluate", bench)]
    rows[1]["run_id"] = rows[1]["dataset"] + "@ba9876543210"
    out = public(rows)
    models = [r["model"] for r in out]
    assert len(set(models)) == 3 and all(m.startswith("sc1b") and "~" in m for m in models)
    assert out[0]["dataset"] != out[1]["dataset"]
    assert not any("/" in str(v) for r in out for v in r.values()), out
    lines = results_summary(out)
    assert sorted((line["model"], line["estimate"]) for line in lines if line["epoch"] == 1) == \
        sorted([(models[0], 0.3), (models[1], 0.6)])
    # a base model's folder has one public name as `model` and as `base_model` (the pairing)
    assert out[0]["base_model"] == out[1]["base_model"] == out[2]["model"]
    # the same place however spelled (trailing `/`, file:// URI) has one name; the same store the same rows
    assert place_name(b) == place_name(b.rstrip("/"))
    assert place_name("file:///data/training/a/sc1b-multiplt-lua") == models[0]
    assert public(rows) == out


def test_a_folder_named_like_a_hub_model_is_not_published_as_that_model():
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    out = public([store_row("/x/gpt2", None, 0, 0.2, "/data/evaluate", "humaneval-lua.jsonl"),
                  store_row("gpt2", None, 0, 0.1, "/data/evaluate", "humaneval-lua.jsonl")])
    local, hub = out[0]["model"], out[1]["model"]
    assert hub == "gpt2" and local.startswith("gpt2~") and local != hub
    with pytest.raises(HFValidationError):
        validate_repo_id(local)  # no Hub id can be spelled so
