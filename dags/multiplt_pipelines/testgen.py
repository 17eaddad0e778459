"""Params and command lines of `multiplt_testgen` (one entry per shard, computed at run start).

Storage under the `[multiplt] data_uri` root: the corpus step's functions at
`corpus/functions` (the `multiplt_corpus_functions` Asset) and the tests at `testgen/`
(`testgen/tests` is the `multiplt_testgen_tests` Asset).
"""

from __future__ import annotations

from multiplt.generation.backends import NAMES as BACKEND_NAMES


def functions_uri(data_uri: str) -> str:
    return data_uri.rstrip("/") + "/corpus/functions"


def out_uri(data_uri: str) -> str:
    return data_uri.rstrip("/") + "/testgen"


def _p(default, description: str, **schema) -> dict:
    return {"default": default, "description": description, **schema}


PARAMS = {
    "functions": _p(None, "functions dataset URI (null = <data_uri>/corpus/functions; a "
                    "multiplt_corpus run writes <out>/functions, by default "
                    "<data_uri>/corpus/<source>/functions; a run started by its Asset event "
                    "takes the folder from the event)", type=["null", "string"]),
    "out": _p(None, "output URI (null = <data_uri>/testgen)", type=["null", "string"]),
    "backend": _p("transformers", "generation backend", type="string", enum=list(BACKEND_NAMES)),
    "model": _p("bigcode/starcoderbase-1b", "the test-writing model", type="string", minLength=1),
    "revision": _p(None, "model revision (null = default branch)", type=["null", "string"]),
    "api_base": _p(None, "openai backend: the server URL (e.g. http://host:8000/v1; `model` is "
                   "its served model name)", type=["null", "string"]),
    "n": _p(5, "completions per function (MultiPL-T: 5)", type="integer", minimum=1, maximum=100),
    "temperature": _p(0.2, "sampling temperature", type="number", minimum=0, maximum=2),
    "top_p": _p(0.95, "nucleus sampling", type="number", exclusiveMinimum=0, maximum=1),
    "max_new_tokens": _p(400, "new tokens per completion", type="integer", minimum=1, maximum=4096),
    "min_coverage": _p(90, "drop functions under this statement coverage (%)", type="integer",
                       minimum=0, maximum=100),
    "timeout": _p(5, "seconds per assert", type="number", exclusiveMinimum=0, maximum=120),
    "shards": _p(4, "shards (parallel tasks per stage)", type="integer", minimum=1, maximum=1024),
    "replay_source": _p(None, "replay backend: JSONL of {name: sha1, completion} or a completion "
                        "folder", type=["null", "string"]),
}


def resolved_params(params, dag_run, triggering_asset_events) -> dict:
    """This run's settings (Params <- the `multiplt_testgen` Variable <- conf), with `functions` set
    from the triggering corpus event, if any (chain.py). Reads the Variable: call it in a task."""
    from multiplt_pipelines import chain

    settings = chain.run_settings("multiplt_testgen", params, dag_run)
    return chain.chained_input(settings, chain.asset_events(triggering_asset_events),
                               asset=chain.FUNCTIONS_ASSET, key="functions_uri", param="functions")


def tests_announcement(params: dict, data_uri: str) -> dict:
    """The tests Asset event's extra, from the run's funnel.json (reads storage); EmptyInput when
    no function kept a test."""
    from multiplt import storage
    from multiplt_pipelines.chain import announcement, funnel_rows

    out = params.get("out") or out_uri(data_uri)
    funnel_uri = storage.join(out, "funnel.json")
    return announcement("testgen", funnel_rows(storage.read_json(funnel_uri)), {
        "tests_uri": storage.join(out, "tests"),
        "functions_uri": params.get("functions") or functions_uri(data_uri),
        "model": params["model"], "funnel_uri": funnel_uri})


def testgen_plan(params: dict, data_uri: str) -> list[dict]:
    """Per shard: the argv of its generate, validate and write stages."""
    base = ["testgen", "--functions", params.get("functions") or functions_uri(data_uri),
            "--out", params.get("out") or out_uri(data_uri), "--backend", params["backend"],
            "--model", params["model"], "--n", str(params["n"]),
            "--temperature", str(params["temperature"]), "--top-p", str(params["top_p"]),
            "--max-new-tokens", str(params["max_new_tokens"]),
            "--min-coverage", str(params["min_coverage"]), "--timeout", str(params["timeout"])]
    if params.get("revision"):
        base += ["--revision", params["revision"]]
    if params.get("api_base"):
        base += ["--api-base", params["api_base"]]
    if params.get("replay_source"):
        base += ["--replay-source", params["replay_source"]]
    shards = int(params["shards"])
    return [{stage: [*base, "--shard", f"{k}/{shards}", "--stage", stage]
             for stage in ("generate", "validate", "write")} for k in range(shards)]
