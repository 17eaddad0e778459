"""Params and plan of `multiplt_corpus` (kept apart from params.py/plans.py: one pipeline each).

Storage layout under the ``[multiplt] data_uri`` root: ``corpus/<source>/`` unless ``out`` is
given; inside it ``functions/``, ``excluded/``, ``funnel.json`` (docs/corpus.md).
"""

from __future__ import annotations

from multiplt.corpus.sources import NAMED_SOURCES  # stdlib imports only: cheap for DAG parsing
from multiplt_pipelines.params import LIST_PATTERN, _p, _required

CORPUS = {
    "source": _required("a folder of .py files, a parquet/JSONL file or folder with a `content` "
                        "column, hf://datasets/OWNER/NAME[/DIR], or "
                        f"{' or '.join(NAMED_SOURCES)}", type="string", minLength=1),
    "out": _p(None, "output URI (null = <data_uri>/corpus/<source>)", type=["null", "string"]),
    "benchmarks": _p("humaneval", "comma-separated benchmarks to decontaminate against "
                     "(humaneval, HumanEval- or MBPP-format JSONL URIs)", type="string", minLength=1,
                     pattern=LIST_PATTERN),
    "shards": _p(4, "input shards (mapped build tasks)", type="integer", minimum=1, maximum=4096),
    "dedup_buckets": _p(2, "buckets of the cross-shard dedup pass (mapped tasks)", type="integer",
                        minimum=1, maximum=1024),
    "workers": _p(1, "parallel type-check batches inside each shard task", type="integer",
                  minimum=1, maximum=64),
    "limit": _p(None, "read only the first N documents of each shard (null = all)",
                type=["null", "integer"], minimum=1),
}


def corpus_out(params: dict, data_uri: str) -> str:
    if params.get("out"):
        return params["out"].rstrip("/")
    from multiplt.evaluation.run_folder import safe_part

    return "/".join([data_uri.rstrip("/"), "corpus", safe_part(params["source"])])


def corpus_plan(params: dict, data_uri: str) -> dict:
    """The command lines of one run: one build per shard, one dedup per bucket, the merge."""
    out = corpus_out(params, data_uri)
    shards, buckets = int(params["shards"]), int(params["dedup_buckets"])
    build = ["corpus", "build", "--source", params["source"], "--out", out,
             "--benchmarks", params["benchmarks"], "--workers", str(params["workers"])]
    if params.get("limit"):
        build += ["--limit", str(params["limit"])]
    return {
        "out": out,
        "shards": [[*build, "--shard", f"{k}/{shards}"] for k in range(shards)],
        "dedup": [["corpus", "dedup", "--out", out, "--bucket", f"{b}/{buckets}"] for b in range(buckets)],
        "merge": [["corpus", "merge", "--out", out]],
    }


def functions_announcement(out: str, source: str) -> dict:
    """The functions Asset event's extra, from the merged funnel.json (reads storage);
    EmptyInput when no function was kept."""
    from multiplt import storage
    from multiplt_pipelines.chain import announcement, funnel_rows

    funnel_uri = storage.join(out, "funnel.json")
    return announcement("corpus", funnel_rows(storage.read_json(funnel_uri)), {
        "functions_uri": storage.join(out, "functions"), "source": source, "funnel_uri": funnel_uri})
