"""multiplt_testgen's and multiplt_translate's plans: one generate/validate/write command line per
shard, each accepted by the real `multiplt testgen` parser, with the Params passed through; the
default output folder of each input is its own (the same input gets the same folder, another
input another), so a second corpus (tests dataset) does not land in the first one's output,
which `multiplt testgen` (`multiplt translate`) refuses with exit 2."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
for _path in (str(REPO / "dags"), str(REPO / "plugins")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from multiplt_pipelines import testgen as plans  # noqa: E402
from multiplt_pipelines import translation  # noqa: E402

from multiplt.cli import build_parser  # noqa: E402


def test_plan_has_three_stages_per_shard_with_the_params():
    params = {k: v["default"] for k, v in plans.PARAMS.items()}
    params.update(shards=3, backend="replay", replay_source="file:///r.jsonl", n=2)
    entries = plans.testgen_plan(params, "file:///DATA/runs/")
    assert len(entries) == 3
    parser = build_parser()
    for k, entry in enumerate(entries):
        assert sorted(entry) == ["generate", "validate", "write"]
        for stage, argv in entry.items():
            args = parser.parse_args(argv)
            assert (args.command, args.stage, args.shard) == ("testgen", stage, f"{k}/3")
            assert args.functions == "file:///DATA/runs/corpus/functions"
            assert args.out == "file:///DATA/runs/testgen/corpus_functions"
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
    assert outs(None) == {f"{data}/testgen/corpus_functions"}  # the default functions
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
    # a manual run with the defaults reads what testgen writes with its defaults
    assert outs(None) == {f"{data}/translate/testgen_corpus_functions_tests"}
    assert translation.run_inputs({}, data)["tests"] == plans.run_inputs({}, data)["out"] + "/tests"
    assert outs(f"{data}/testgen/corpus_other_functions/tests", out="s3://o/tr") == {"s3://o/tr"}
    entry = translation.translation_plan({**params, "tests": f"{data}/testgen/x/tests"}, data)[0]
    assert entry["execute"][2].startswith("/".join([f"{data}/translate/testgen_x_tests", "work", "lua", ""]))
    # the dataset Assets keep their URIs (identifiers; the events name the folder)
    assert translation.dataset_asset_uri(data, "lua") == f"{data}/translate/data/lua"
