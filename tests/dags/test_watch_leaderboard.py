"""The leaderboard's pass@k-by-epoch lines in the watcher's flow: each new base is evaluated (its
multiplt_evaluate run) and fine-tuned (multiplt_finetune, `evaluate_base` off, whose checkpoints
multiplt_evaluate evaluates); the results rows are made up as those runs' `results record` would
write them (model, experiment, epoch and language from the plans' command lines), and every
fine-tuned line starts at its own base's epoch-0 score, also with two bases in one experiment."""

from __future__ import annotations

from tests.dags.test_pipeline_plans import defaults
from multiplt_pipelines import params as schemas  # noqa: E402 (dags/ is on sys.path)
from multiplt_pipelines import watching  # noqa: E402
from multiplt_pipelines.plans import checkpoint_confs, evaluation_plan, training_plan  # noqa: E402
from multiplt_leaderboard import board  # noqa: E402 (plugins/ is on sys.path)

DATA = "file:///DATA"


def recorded_rows(conf: dict, estimate: float) -> list[dict]:
    """The pass@1 rows a multiplt_evaluate run with `conf` records (one per language)."""
    params = {**defaults(watching.evaluate_params(schemas.EVALUATE, None)), **conf}
    rows = []
    for entry in evaluation_plan(params, DATA, DATA + "/results.parquet"):
        generate, record = entry["generate"], entry["record"]
        experiment = record[record.index("--experiment") + 1] if "--experiment" in record else None
        rows.append({"model": generate[generate.index("--model") + 1], "revision": conf.get("revision"),
                     "experiment": experiment, "lang": entry["lang"],
                     "epoch": int(generate[generate.index("--epoch") + 1]) if "--epoch" in generate
                     else 0, "k": 1,
                     "estimate": estimate + 0.1 * int(conf["epoch"]), "num_problems": 161, "n": 20,
                     "temperature": 0.2, "benchmark": f"{DATA}/benchmarks/humaneval-{entry['lang']}.jsonl",
                     "created_at": "2026-01-01", "run_id": entry["run"]})
    return rows


def watcher_rows(models: dict[str, float], settings: dict) -> list[dict]:
    """The rows of the runs a watch run triggers for `models` ({model: base score}): the base's
    evaluation, and each checkpoint's (two epochs) of each finetune run."""
    triggers = watching.watch_triggers(settings, list(models), "asset_triggered__1")
    rows = []
    for trigger in triggers["evaluate"]:
        rows += recorded_rows(trigger["conf"], models[trigger["conf"]["model"]])
    for trigger in triggers["finetune"]:
        params = {**defaults(schemas.FINETUNE), **trigger["conf"]}
        manifests = [{"lang": t["lang"], "out": t["out"], "rows": [
            {"uri": f"{t['out']}/checkpoints/{t['lang']}-{params['experiment']}-epoch{e}",
             "tag": f"{t['lang']}-{params['experiment']}-epoch{e}", "lang": t["lang"], "epoch": e,
             "experiment": params["experiment"]} for e in (1, 2)]}
            for t in training_plan(params, DATA)]
        for conf in checkpoint_confs(params, manifests):
            rows += recorded_rows(conf, models[params["base_model"]])
    return rows


def test_the_new_base_starts_its_fine_tuned_line():
    """The watcher evaluated the base with no experiment, so it stayed a point of its own."""
    settings = defaults(watching.WATCH, finetune_languages=["lua"], evaluate_languages=["lua"])
    series = board.epoch_series(watcher_rows({"bigcode/starcoderbase-1b": 0.1}, settings))
    assert {label: [(epoch, round(v, 6)) for epoch, v in line] for label, line in series.items()} == {
        "lua (multiplt) · file:///DATA/training/bigcode_starcoderbase_1b-multiplt-lua":
            [(0, 0.1), (1, 0.2), (2, 0.3)]}
    # without fine-tuning the base is evaluated under no experiment, as before
    alone = watching.watch_triggers({**settings, "finetune_languages": []}, ["ns/m"], "r")
    assert alone["evaluate"][0]["conf"]["experiment"] is None


def test_two_bases_in_one_experiment_each_start_their_own_line():
    """Two bases fine-tuned under one experiment (the watcher's second new model): the board took
    the epoch-0 point only from "the only base" of a language and experiment, so every line
    lost it. Each line now starts at the base its training output is named after."""
    settings = defaults(watching.WATCH, finetune_languages=["lua", "rkt"],
                        evaluate_languages=["lua", "rkt", "r"])
    rows = watcher_rows({"bigcode/starcoderbase-1b": 0.1, "bigcode/starcoder2-3b": 0.5}, settings)
    series = board.epoch_series(rows)
    for lang in ("lua", "rkt"):
        old = f"{lang} (multiplt) · file:///DATA/training/bigcode_starcoderbase_1b-multiplt-{lang}"
        new = f"{lang} (multiplt) · file:///DATA/training/bigcode_starcoder2_3b-multiplt-{lang}"
        assert [epoch for epoch, _ in series.pop(old)] == [0, 1, 2]
        assert [round(v, 6) for _, v in series.pop(new)] == [0.5, 0.6, 0.7]
    # R is evaluated, not fine-tuned: each base is a point of its own
    assert series == {"r (multiplt) · bigcode/starcoder2-3b": [(0, 0.5)],
                      "r (multiplt) · bigcode/starcoderbase-1b": [(0, 0.1)]}
