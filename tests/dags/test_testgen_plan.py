"""multiplt_testgen's and multiplt_translate's plans: one generate/validate/write command line per
shard, each accepted by the real `multiplt testgen` parser, with the Params passed through; the
default output folder of each input is its own (the same input gets the same folder, another
input another), so a second corpus (tests dataset) does not land in the first one's output,
which `multiplt testgen` (`multiplt translate`) refuses with exit 2. A manual run on functions
without rows is skipped at `plan`."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[2]
for _path in (str(REPO / "dags"), str(REPO / "plugins")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from multiplt_pipelines import testgen as plans  # noqa: E402
from multiplt_pipelines import translation  # noqa: E402
from multiplt_pipelines.checks import BadParams  # noqa: E402

from multiplt.cli import build_parser  # noqa: E402
from tests.support.airflow import load_dag  # noqa: E402

FUNCTIONS = REPO / "tests" / "fixtures" / "testgen" / "functions.jsonl"


def test_plan_has_three_stages_per_shard_with_the_params():
    params = {k: v["default"] for k, v in plans.PARAMS.items()}
    params.update(shards=3, backend="replay", replay_source="file:///r.jsonl", n=2,
                  functions="file:///DATA/runs/corpus/stdlib/functions")
    entries = plans.testgen_plan(params, "file:///DATA/runs/")
    assert len(entries) == 3
    parser = build_parser()
    for k, entry in enumerate(entries):
        assert sorted(entry) == ["generate", "validate", "write"]
        for stage, argv in entry.items():
            args = parser.parse_args(argv)
            assert (args.command, args.stage, args.shard) == ("testgen", stage, f"{k}/3")
            assert args.functions == "file:///DATA/runs/corpus/stdlib/functions"
            assert args.out == "file:///DATA/runs/testgen/corpus_stdlib_functions"
            assert (args.backend, args.replay_source, args.n, args.min_coverage, args.timeout,
                    args.max_new_tokens) == ("replay", "file:///r.jsonl", 2, 90, 5.0, 400)


def _out(argv: list[str]) -> str:
    return argv[argv.index("--out") + 1]


def test_each_functions_input_gets_its_own_default_out_and_keeps_it():
    params = {**{k: v["default"] for k, v in plans.PARAMS.items()}, "shards": 2}
    data = "s3://b/runs"

    def outs(functions, **given) -> set[str]:
        entries = plans.testgen_plan({**params, "functions": functions, **given}, data)
        return {_out(argv) for entry in entries for argv in entry.values()}

    [stdlib] = outs(f"{data}/corpus/stdlib/functions")
    [other] = outs(f"{data}/corpus/hf_datasets_x_y/functions")
    [outside] = outs("file:///mnt/functions")
    assert stdlib == f"{data}/testgen/corpus_stdlib_functions"
    assert other == f"{data}/testgen/corpus_hf_datasets_x_y_functions"
    assert outside == f"{data}/testgen/file_mnt_functions"
    # the same input, written either way, gets the same folder: a rerun resumes there
    assert outs(f"{data}/corpus/stdlib/functions/") == {stdlib}
    assert plans.run_inputs({**params, "functions": f"{data}/corpus/stdlib/functions"},
                            data + "/")["out"] == stdlib
    # no default functions: nothing writes the Asset's URI <data_uri>/corpus/functions
    for missing in (None, ""):
        with pytest.raises(BadParams, match="^Param functions: a run started by hand needs "):
            outs(missing)
    # a given out wins, whatever the input
    assert outs(f"{data}/corpus/stdlib/functions", out="s3://o/tg") == {"s3://o/tg"}
    assert outs(f"{data}/corpus/other/functions", out="s3://o/tg") == {"s3://o/tg"}


def test_each_tests_input_gets_its_own_default_translate_out_and_keeps_it():
    params = {**{k: v["default"] for k, v in translation.PARAMS.items()}, "languages": ["lua", "r"],
              "shards": 2}
    data = "s3://b/runs"

    def outs(tests, **given) -> set[str]:
        params_ = {**params, "tests": tests, **given}
        got = {e["out"] for e in translation.translation_plan(params_, data)}
        got |= {_out(e[stage]) for e in translation.translation_plan(params_, data)
                for stage in ("sample", "collect")}
        return got | {_out(translation.summary_command(params_, data))}

    [first] = outs(f"{data}/testgen/corpus_stdlib_functions/tests")
    [second] = outs(f"{data}/testgen/corpus_other_functions/tests")
    assert first == f"{data}/translate/testgen_corpus_stdlib_functions_tests"
    assert second == f"{data}/translate/testgen_corpus_other_functions_tests"
    assert outs(f"{data}/testgen/corpus_stdlib_functions/tests/") == {first}
    # the tests testgen writes by default for a functions input are translated where outs says
    written = plans.run_inputs({"functions": f"{data}/corpus/stdlib/functions"}, data)["out"]
    assert translation.run_inputs({"tests": written + "/tests"}, data)["out"] == first
    # no default tests: nothing writes the Asset's URI <data_uri>/testgen/tests
    for missing in (None, ""):
        with pytest.raises(BadParams, match="^Param tests: a run started by hand needs "):
            outs(missing)
    assert outs(f"{data}/testgen/corpus_other_functions/tests", out="s3://o/tr") == {"s3://o/tr"}
    entry = translation.translation_plan({**params, "tests": f"{data}/testgen/x/tests"}, data)[0]
    assert entry["execute"][2].startswith("/".join([f"{data}/translate/testgen_x_tests", "work", "lua", ""]))
    # the dataset Assets keep their URIs (identifiers; the events name the folder)
    assert translation.dataset_asset_uri(data, "lua") == f"{data}/translate/data/lua"


def test_a_manual_run_on_functions_with_no_row_is_skipped_at_plan(tmp_path):
    """`multiplt testgen` refuses a functions dataset without rows (exit 2): a run started by
    hand on one ends at `plan` with the reason, like a run started by an event announcing 0
    rows; an input that cannot be listed is left to the stage command, which names the problem."""
    import polars as pl
    from airflow.sdk.exceptions import AirflowSkipException

    plan = load_dag("multiplt_testgen").get_task("plan").python_callable
    params = {**{k: v["default"] for k, v in plans.PARAMS.items()}, "shards": 1}
    manual = SimpleNamespace(conf={})
    corpus = tmp_path / "corpus"  # a corpus build that kept no function: its columns, 0 rows
    (corpus / "functions").mkdir(parents=True)
    rows = pl.read_ndjson(FUNCTIONS)
    rows.clear().write_parquet(corpus / "functions" / "part-00000.parquet")
    for given in (corpus, corpus / "functions"):
        with pytest.raises(AirflowSkipException,
                           match=rf"^nothing to do: the functions dataset {re.escape(str(given))} has 0 rows$"):
            plan("file:///DATA", params={**params, "functions": str(given)}, dag_run=manual,
                 triggering_asset_events={})
    rows.write_parquet(corpus / "functions" / "part-00000.parquet")
    planned = plan("file:///DATA", params={**params, "functions": str(corpus)}, dag_run=manual,
                   triggering_asset_events={})
    generate = planned["shards"][0]["generate"]
    assert generate[generate.index("--functions") + 1] == str(corpus)
    missing = plan("file:///DATA", params={**params, "functions": str(tmp_path / "missing")},
                   dag_run=manual, triggering_asset_events={})
    assert missing["settings"]["functions"] == str(tmp_path / "missing")
