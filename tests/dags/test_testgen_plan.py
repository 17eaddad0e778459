"""multiplt_testgen's plan: one generate/validate/write command line per shard, each accepted
by the real `multiplt testgen` parser, with the Params passed through."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
for _path in (str(REPO / "dags"), str(REPO / "plugins")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from multiplt_pipelines import testgen as plans  # noqa: E402

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
            assert args.out == "file:///DATA/runs/testgen"
            assert (args.backend, args.replay_source, args.n, args.min_coverage, args.timeout,
                    args.max_new_tokens) == ("replay", "file:///r.jsonl", 2, 90, 5.0, 400)
