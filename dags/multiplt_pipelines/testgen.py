"""Params and command lines of `multiplt_testgen` (one entry per shard, computed at run start).

Storage under the `[multiplt] data_uri` root: the functions are the triggering corpus event's
`functions_uri` or, in a run started by hand, the `functions` Param, which `plan` requires (the
corpus step writes `corpus/<source>/functions`; `corpus/functions` is only the URI of the
`multiplt_corpus_functions` Asset, which nothing writes) and, unless `out` is given, the tests of each functions input
in a folder of their own, `testgen/<input_name(functions)>` (`testgen/tests` is the URI of the
`multiplt_testgen_tests` Asset, an identifier only: events name the folder).
"""

from __future__ import annotations

from multiplt.generation.backends import NAMES as BACKEND_NAMES
from multiplt_pipelines.params import TRIMMED_PATTERN, _p


def functions_uri(data_uri: str) -> str:
    """The functions Asset's URI (an identifier: nothing writes it; events name the folder)."""
    return data_uri.rstrip("/") + "/corpus/functions"


def out_uri(data_uri: str) -> str:
    """The folder holding the default outputs (`<data_uri>/testgen`, one subfolder per input)."""
    return data_uri.rstrip("/") + "/testgen"


def input_name(uri: str, data_uri: str) -> str:
    """One path segment naming an input: its path under `data_uri` (the whole URI when it lies
    elsewhere) made safe as `multiplt_corpus` names its source folder (`safe_part`). The same
    input spelled the same way gets the same name, so a rerun resumes. Inputs whose names differ
    only in punctuation (`a/b_c`, `a_b/c`) share one, and then `multiplt testgen` and `multiplt
    translate` refuse the second (exit 2: its output holds another input's rows) rather than mix
    them; give `out`."""
    from multiplt.evaluation.run_folder import safe_part

    root, uri = data_uri.rstrip("/") + "/", uri.rstrip("/")
    return safe_part(uri[len(root):] if uri.startswith(root) else uri)


def needs_functions(data_uri: str) -> str:
    """What a run started by hand without `functions` is told it needs (chain.given_input)."""
    example = data_uri.rstrip("/") + "/corpus/stdlib/functions"
    return ("the functions dataset to write tests for; a multiplt_corpus run writes it at "
            "<out>/functions, by default <data_uri>/corpus/<source>/functions (e.g. "
            f"{example})")


def run_inputs(params: dict, data_uri: str) -> dict:
    """The Params with `out` filled in: `out` defaults to
    `<data_uri>/testgen/<input_name(functions)>`; a given `out` wins. `functions` has no
    default (checks.BadParams without it: chain.given_input)."""
    from multiplt_pipelines.chain import given_input

    functions = given_input(params, "functions", needs_functions(data_uri))
    out = params.get("out") or f"{out_uri(data_uri)}/{input_name(functions, data_uri)}"
    return {**params, "functions": functions, "out": out}


def default_out(functions: str, data_uri: str) -> str:
    """The folder a run on `functions` writes when no `out` is set (run_inputs)."""
    return run_inputs({"functions": functions}, data_uri)["out"]


PARAMS = {
    "functions": _p(None, "functions dataset URI, required in a run started by hand (a "
                    "multiplt_corpus run writes <out>/functions, by default "
                    "<data_uri>/corpus/<source>/functions); a run started by its Asset event "
                    "takes the folder from the event", type=["null", "string"]),
    "out": _p(None, "output URI (null = <data_uri>/testgen/<functions as a folder name: its URI "
              "under data_uri>, e.g. <data_uri>/testgen/corpus_stdlib_functions)",
              type=["null", "string"]),
    "backend": _p("transformers", "generation backend", type="string", enum=list(BACKEND_NAMES)),
    "model": _p("bigcode/starcoderbase-1b", "the test-writing model", type="string", minLength=1,
                pattern=TRIMMED_PATTERN),
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
    "other_inputs": _p("run", "a corpus announced to this Asset-triggered run besides the one it "
                       "processes (its newest event's): run = start a run of this DAG for it, "
                       "log = only name it in the other_inputs task's log with the conf to "
                       "start one by hand (the main job sets log)", type="string",
                       enum=["run", "log"]),
}


def resolved_params(params, dag_run, triggering_asset_events) -> tuple[dict, set[str]]:
    """This run's settings (Params <- the `multiplt_testgen` Variable <- conf), with `functions` set
    from the triggering corpus event, if any, and the keys whose value came from the Variable
    (chain.chained_settings). Reads the Variable: call it in a task."""
    from multiplt_pipelines import chain

    return chain.chained_settings("multiplt_testgen", params, dag_run, PARAMS, triggering_asset_events,
                                  asset=chain.FUNCTIONS_ASSET, key="functions_uri", param="functions")


def require_functions(params: dict, data_uri: str) -> None:
    """EmptyInput when the run's functions dataset holds no row (reads storage): `multiplt
    testgen` refuses it (exit 2), so a run started by hand on it ends like one started by an
    event announcing 0 rows. checks.BadParams when the run names none (run_inputs)."""
    from multiplt.testgen.inputs import parquet_files
    from multiplt_pipelines.chain import require_rows

    functions = run_inputs(params, data_uri)["functions"]
    require_rows("functions dataset", functions, lambda: parquet_files(functions))


def tests_announcement(params: dict, data_uri: str) -> dict:
    """The tests Asset event's extra, from the run's funnel.json (reads storage); EmptyInput when
    no function kept a test. `params`: the settings `plan` returned (`testgen_run`)."""
    from multiplt import storage
    from multiplt_pipelines.chain import announcement, funnel_rows

    params = run_inputs(params, data_uri)
    funnel_uri = storage.join(params["out"], "funnel.json")
    return announcement("testgen", funnel_rows(storage.read_json(funnel_uri)), {
        "tests_uri": storage.join(params["out"], "tests"), "functions_uri": params["functions"],
        "model": params["model"], "funnel_uri": funnel_uri})


def testgen_run(params: dict, data_uri: str) -> dict:
    """What `plan` returns: the run's `settings` (`functions` and `out` filled in), which
    `announce` reads instead of resolving the Variable again, and the `shards`' command lines."""
    settings = run_inputs(params, data_uri)
    return {"settings": settings, "shards": testgen_plan(settings, data_uri)}


def testgen_plan(params: dict, data_uri: str) -> list[dict]:
    """Per shard: the argv of its generate, validate and write stages."""
    params = run_inputs(params, data_uri)
    base = ["testgen", "--functions", params["functions"],
            "--out", params["out"], "--backend", params["backend"],
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
