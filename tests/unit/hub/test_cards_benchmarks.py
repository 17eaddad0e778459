"""pass@1 in the cards never mixes benchmarks: a run on part of HumanEval (`--limit`,
`--problems`) or on another source is a benchmark of its own, so a 5-problem smoke run's 0.60
does not stand in for the full HumanEval's 0.12 (no Hub needed)."""

from __future__ import annotations

from multiplt import storage
from multiplt.hub import cards
from multiplt.hub.checkpoints import PassAt1, pass_at_1, select
from multiplt.results.benchmarks import benchmark_name

OUT = "file:///runs/training/tiny-multiplt-lua"


def result(benchmark, estimate, *, num_problems, revision="lua-multiplt-epoch1", epoch=1, n=20,
           temperature=0.2, created="2026-01-01T00:00:00+00:00", run_id=None, k=1, model=OUT,
           lang="lua"):
    """A store row as `multiplt_evaluate` records it: `benchmark` is the language's benchmark
    file, `dataset` the run folder's name."""
    folder = f"{benchmark}-{lang}-{model.rsplit('/', 1)[-1]}-{revision}-{temperature:g}"
    return {"run_id": run_id or f"{folder}@{n}", "dataset": folder, "model": model,
            "revision": revision, "experiment": "multiplt", "lang": lang, "epoch": epoch,
            "benchmark": f"s3://data/benchmarks/{benchmark}-{lang}.jsonl", "num_problems": num_problems,
            "n": n, "temperature": temperature, "k": k, "estimate": estimate, "created_at": created}


def test_benchmark_name_is_the_same_in_every_language_and_keeps_the_selection():
    name = lambda benchmark, lang="lua", dataset="": benchmark_name(  # noqa: E731
        {"benchmark": benchmark, "lang": lang, "dataset": dataset})
    # the DAG's layout: benchmarks/<benchmark>-<lang>.jsonl, the selection in the file name
    assert name("file:///d/benchmarks/humaneval-lua.jsonl") == "humaneval"
    assert name("file:///d/benchmarks/humaneval-r.jsonl", "r") == "humaneval"
    assert name("/d/benchmarks/humaneval_first5-rkt.jsonl", "rkt",
                "humaneval_first5-rkt-m-main-0.2") == "humaneval_first5"
    # generation settings off the defaults (the DAG's _g<hash>) are another measurement
    assert name("/d/benchmarks/humaneval_first5-rkt.jsonl", "rkt",
                "humaneval_first5_g0123abcd-rkt-m-main-0.2") == "humaneval_first5_g0123abcd"
    assert name("s3://b/mbpp-jl.jsonl.gz", "jl") == "mbpp"
    # `multiplt evaluate --limit 5 / --problems`: the full file, the selection in the folder name
    assert name("out/benchmarks/humaneval-lua.jsonl", "lua", "humaneval_first5-lua-m-main-0.2") == "humaneval_first5"
    assert name("out/benchmarks/humaneval-lua.jsonl", "lua",
                "humaneval_p0123abcd_first5-lua-m-main-0.2") == "humaneval_p0123abcd_first5"
    assert name("out/benchmarks/humaneval-lua.jsonl", "lua", "humaneval-lua-m-main-0.2") == "humaneval"
    assert name("out/benchmarks/humaneval-lua.jsonl", "lua", "my-own-folder") == "humaneval"
    # `multiplt evaluate --source /data/mbpp.jsonl --limit 5`: the folder starts with the path
    assert name("out/benchmarks//data/mbpp.jsonl-lua.jsonl", "lua",
                "data_mbpp.jsonl_first5-lua-m-main-0.2") == "mbpp.jsonl_first5"
    assert name("out/benchmarks//data/mbpp.jsonl-lua.jsonl", "lua",
                "data_mbpp.jsonl-lua-m-main-0.2") == "mbpp.jsonl"
    assert name("humaneval") == "humaneval" and name(None) == "" and name("") == ""


# one model, language and epoch on three benchmarks; the smoke run was recorded last
MIXED = [result("humaneval", 0.12, num_problems=164, created="2026-01-01T00:00:00+00:00"),
         result("mbpp", 0.31, num_problems=397, created="2026-01-02T00:00:00+00:00"),
         result("humaneval_first5", 0.60, num_problems=5, created="2026-01-03T00:00:00+00:00"),
         result("humaneval", 0.90, num_problems=164, k=10)]


def test_results_card_has_a_line_per_benchmark_with_its_problems():
    card = cards.results_card("me/results", MIXED, ["run_id", "benchmark"], "mit")
    assert ("| benchmark | problems | model | revision | language | epoch | temperature | pass@1 |"
            in card)
    assert f"| humaneval | 164 | {OUT} | lua-multiplt-epoch1 | lua | 1 | 0.2 | 0.1200 |" in card
    assert f"| humaneval_first5 | 5 | {OUT} | lua-multiplt-epoch1 | lua | 1 | 0.2 | 0.6000 |" in card
    assert f"| mbpp | 397 | {OUT} | lua-multiplt-epoch1 | lua | 1 | 0.2 | 0.3100 |" in card
    assert "0.9000" not in card  # pass@10 is not pass@1
    assert "latest recorded one (`created_at`)" in card


def test_results_card_takes_the_latest_recorded_run_per_line_and_splits_temperatures():
    rows = [result("humaneval", 0.5, num_problems=164, n=2, created="2026-01-01T00:00:00+00:00"),
            result("humaneval", 0.12, num_problems=164, n=200, created="2026-01-05T00:00:00+00:00"),
            result("humaneval", 0.3, num_problems=164, n=1, created="2026-01-02T00:00:00+00:00"),
            result("humaneval", 0.4, num_problems=164, temperature=0.8),
            # a base model: epoch 0 at temperature 0 is a line of its own, not "no epoch"
            result("humaneval", 0.07, num_problems=164, model="org/base", revision=None, epoch=0,
                   temperature=0.0)]
    summary = cards.results_summary(rows)
    assert [(r["model"], r["epoch"], r["temperature"], r["estimate"]) for r in summary] == [
        (OUT, 1, 0.2, 0.12), (OUT, 1, 0.8, 0.4), ("org/base", 0, 0.0, 0.07)]
    card = cards.results_card("me/results", rows, ["run_id"], "mit")
    assert "| humaneval | 164 | org/base |  | lua | 0 | 0 | 0.0700 |" in card
    assert "0.5000" not in card  # the largest pass@1 is not the one shown


def write_store(tmp_path, rows) -> str:
    import polars as pl

    from multiplt.results.schema import polars_schema

    store = str(tmp_path / "results.parquet")
    frame = pl.DataFrame(rows, schema_overrides={c: d for c, d in polars_schema().items() if c in rows[0]})
    storage.write_parquet(store, frame.with_columns(
        [pl.lit(None, d).alias(c) for c, d in polars_schema().items() if c not in rows[0]]))
    return store


def output(*epochs) -> dict:
    return {"out": OUT + "/", "config": {}, "rows": [
        {"tag": f"lua-multiplt-epoch{e}", "lang": "lua", "epoch": e, "eval_loss": 1.0} for e in epochs]}


def test_pass_at_1_compares_the_checkpoints_on_one_benchmark(tmp_path):
    e2 = "lua-multiplt-epoch2"
    rows = [*MIXED,
            result("humaneval", 0.5, num_problems=164, revision=e2, epoch=2, n=2,
                   created="2026-01-01T00:00:00+00:00"),
            result("humaneval", 0.15, num_problems=164, revision=e2, epoch=2, n=200,
                   created="2026-01-04T00:00:00+00:00"),  # recorded later: it counts, not the 0.5
            result("humaneval", 0.99, num_problems=164, model="someone/else", revision=e2, epoch=2)]
    out = output(1, 2)
    pass1 = pass_at_1(write_store(tmp_path, rows), [out], "me/tiny")
    assert pass1 == PassAt1({"lua-multiplt-epoch1": 0.12, e2: 0.15}, "humaneval", (164,))
    assert [r["tag"] for r in select(out, "best", pass1.scores)] == [e2]
    card = cards.model_card("me/tiny", [out], pass1.scores, "mit", pass1.benchmark, pass1.num_problems)
    assert "| lua-multiplt-epoch1 | lua | 1 |  | 1.0000 | 0.1200 |" in card
    assert "| lua-multiplt-epoch2 | lua | 2 |  | 1.0000 | 0.1500 |" in card
    assert "pass@1 is on one benchmark (`humaneval`, 164 problems): the one" in card


def test_the_benchmark_covering_most_tags_wins_then_more_problems_then_the_name(tmp_path):
    tags = [f"lua-multiplt-epoch{e}" for e in (1, 2, 3)]
    # mbpp has more problems but covers one tag; the two partial runs cover all three
    rows = [result("mbpp", 0.3, num_problems=397, revision=tags[0]),
            *[result("humaneval_p1234abcd", 0.2, num_problems=20, revision=t) for t in tags],
            *[result("humaneval_first5", 0.6, num_problems=5, revision=t) for t in tags]]
    pass1 = pass_at_1(write_store(tmp_path / "a", rows), [output(1, 2, 3)], "me/tiny")
    assert (pass1.benchmark, pass1.scores) == ("humaneval_p1234abcd", dict.fromkeys(tags, 0.2))
    same = [result(b, v, num_problems=164, revision=tags[0]) for b, v in (("zeta", 0.1), ("alpha", 0.4))]
    pass1 = pass_at_1(write_store(tmp_path / "b", same), [output(1)], "me/tiny")
    assert (pass1.benchmark, pass1.scores) == ("alpha", {tags[0]: 0.4})


def test_outputs_of_several_languages_share_the_benchmark(tmp_path):
    """One repo, one output per language: each language has its own benchmark file."""
    r_out = "file:///runs/training/tiny-multiplt-r"
    rows = [result("humaneval", 0.12, num_problems=164),
            result("humaneval", 0.2, num_problems=161, lang="r", model=r_out, revision="r-multiplt-epoch1"),
            result("mbpp", 0.3, num_problems=397, lang="r", model=r_out, revision="r-multiplt-epoch1",
                   created="2026-02-01T00:00:00+00:00")]
    r_output = {"out": r_out, "config": {}, "rows": [{"tag": "r-multiplt-epoch1", "lang": "r", "epoch": 1}]}
    pass1 = pass_at_1(write_store(tmp_path, rows), [output(1), r_output], "me/tiny")
    assert pass1 == PassAt1({"lua-multiplt-epoch1": 0.12, "r-multiplt-epoch1": 0.2}, "humaneval", (161, 164))
    card = cards.model_card("me/tiny", [output(1), r_output], pass1.scores, "mit", pass1.benchmark,
                            pass1.num_problems)
    assert "pass@1 is on one benchmark (`humaneval`, 161 to 164 problems)" in card


def test_no_evaluated_checkpoint_gives_no_pass_at_1(tmp_path):
    store = write_store(tmp_path, [result("humaneval", 0.3, num_problems=164, revision="other-tag")])
    assert pass_at_1(store, [output(1)], "me/tiny") == PassAt1({})
    assert pass_at_1(None, [output(1)], "me/tiny") == PassAt1({})
    card = cards.model_card("me/tiny", [output(1)], {}, "mit")
    assert "pass@1 is empty until the checkpoints are evaluated" in card and "one benchmark" not in card


def test_the_card_lists_hub_datasets_only():
    """Training stores a local dataset as an absolute path: the card's `datasets:` metadata names
    Hub datasets, never a folder of the machine it was trained on (nor a storage URI)."""
    outs = [{**output(1), "config": {"dataset": d}} for d in
            ("nuprl/MultiPL-T", "/home/alice/data/racket.jsonl", "s3://b/data/lua")]
    card = cards.model_card("me/tiny", outs, {}, "mit")
    front = card.split("---")[1]
    assert "nuprl/MultiPL-T" in front and "/home/alice" not in front and "s3://" not in front


def test_a_cli_smoke_run_recorded_later_never_stands_in_for_the_full_benchmark(tmp_path):
    """Runs made with the CLI: both folders generated from one full benchmark file, the smoke run
    with `generate --limit 1` (its rows' `selection` is `_first1`, as `results record` derives it)
    and recorded later. `--tags best` and the results card read the full run's pass@1."""
    e1, e2 = "lua-multiplt-epoch1", "lua-multiplt-epoch2"

    def cli_run(folder, revision, estimate, problems, selection, created):
        return {**result("humaneval", estimate, num_problems=problems, revision=revision,
                         epoch=int(revision[-1]), created=created, run_id=f"{folder}@x"),
                "dataset": folder, "selection": selection}

    rows = [cli_run("full1", e1, 0.2, 164, "", "2026-01-01T00:00:00+00:00"),
            cli_run("full2", e2, 0.3, 164, "", "2026-01-01T00:00:00+00:00"),
            cli_run("smoke1", e1, 1.0, 1, "_first1", "2026-01-02T00:00:00+00:00"),
            cli_run("smoke2", e2, 0.0, 1, "_first1", "2026-01-02T00:00:00+00:00")]
    out = output(1, 2)
    pass1 = pass_at_1(write_store(tmp_path, rows), [out], "me/tiny")
    assert pass1 == PassAt1({e1: 0.2, e2: 0.3}, "humaneval", (164,))
    assert [r["tag"] for r in select(out, "best", pass1.scores)] == [e2]
    card = cards.results_card("me/results", rows, ["run_id"], "mit")
    assert f"| humaneval | 164 | {OUT} | {e1} | lua | 1 | 0.2 | 0.2000 |" in card
    assert f"| humaneval_first1 | 1 | {OUT} | {e1} | lua | 1 | 0.2 | 1.0000 |" in card
