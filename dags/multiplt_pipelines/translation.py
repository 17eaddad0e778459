"""Params and plan of `multiplt_translate` (pure functions; only require_tests and
dataset_announcement read storage).

Storage under the `[multiplt] data_uri` root: the step-1 tests dataset is the triggering event's
`tests_uri` or, in a run started by hand, the `tests` Param, which `plan` requires
(`testgen/tests` is only the URI of the `multiplt_testgen_tests` Asset) and, unless
`out` is given, the dataset translated from each tests input in a folder of its own,
`translate/<input_name(tests)>` (`data/<split>-*.parquet`, `excluded/`, `funnel.json`,
`work/<lang>/<K>-of-<N>/`). The dataset Assets' URIs, `translate/data/<split>`, are identifiers
only: events name the folder.
"""

from __future__ import annotations

from multiplt import languages
from multiplt_pipelines.chain import TESTS_ASSET
from multiplt_pipelines.params import (BACKEND_NAMES, TARGET_LANGUAGES, TRIMMED_PATTERN, _p,
                                       languages_schema)
from multiplt_pipelines.plans import _join
from multiplt_pipelines.testgen import input_name

#: the published split name of each target language: dataset files are data/<split>-*.parquet
SPLITS = {code: languages.get(code).name for code in TARGET_LANGUAGES}


def tests_uri(data_uri: str) -> str:
    """The tests Asset's URI (an identifier; events name the folder a run wrote)."""
    return _join(data_uri, "testgen", "tests")


def out_uri(data_uri: str) -> str:
    """The folder holding the default outputs (`<data_uri>/translate`, one subfolder per input)."""
    return _join(data_uri, "translate")


def dataset_asset_uri(data_uri: str, code: str) -> str:
    """The URI of one language's dataset Asset (`<data_uri>/translate/data/<split>`): its
    identifier; the event's `dataset_uri` names the run's folder."""
    return _join(out_uri(data_uri), "data", SPLITS[code])


def needs_tests(data_uri: str) -> str:
    """What a run started by hand without `tests` is told it needs (chain.given_input)."""
    functions = _join(data_uri, "corpus", "stdlib", "functions")
    example = _join(data_uri, "testgen", input_name(functions, data_uri), "tests")
    return ("the tests dataset to translate; a multiplt_testgen run writes it at <out>/tests, "
            "by default <data_uri>/testgen/<functions as a folder name>/tests (e.g. "
            f"{example} for the functions <data_uri>/corpus/stdlib/functions)")


def run_inputs(params: dict, data_uri: str) -> dict:
    """The Params with `out` filled in: `out` defaults to
    `<data_uri>/translate/<input_name(tests)>` (testgen.input_name); a given `out` wins. `tests`
    has no default (checks.BadParams without it: chain.given_input)."""
    from multiplt_pipelines.chain import given_input

    tests = given_input(params, "tests", needs_tests(data_uri))
    out = params.get("out") or _join(out_uri(data_uri), input_name(tests, data_uri))
    return {**params, "tests": tests, "out": out}


def default_out(tests: str, data_uri: str) -> str:
    """The folder a run on `tests` writes when no `out` is set (run_inputs)."""
    return run_inputs({"tests": tests}, data_uri)["out"]


PARAMS = {
    "tests": _p(None, "step-1 tests dataset, required in a run started by hand (a "
                "multiplt_testgen run writes <out>/tests, by default <data_uri>/testgen/"
                "<functions as a folder name>/tests, e.g. "
                "<data_uri>/testgen/corpus_stdlib_functions/tests); a run started by its Asset "
                "event takes the folder from the event", type=["null", "string"]),
    "out": _p(None, "dataset folder (null = <data_uri>/translate/<tests as a folder name: its "
              "URI under data_uri>, e.g. "
              "<data_uri>/translate/testgen_corpus_stdlib_functions_tests)",
              type=["null", "string"]),
    "languages": _p(list(TARGET_LANGUAGES), "target languages",
                    **languages_schema(TARGET_LANGUAGES)),
    "model": _p("bigcode/starcoderbase", "the translating model (MultiPL-T: StarCoderBase-15B)",
                type="string", minLength=1, pattern=TRIMMED_PATTERN),
    "revision": _p(None, "model revision (null = the default branch)", type=["null", "string"]),
    "backend": _p("vllm", "generation backend", type="string", enum=list(BACKEND_NAMES)),
    "api_base": _p(None, "openai backend: the server URL (a vLLM server fleet behind one URL)",
                   type=["null", "string"]),
    "n": _p(50, "translations sampled per function", type="integer", minimum=1, maximum=1000),
    "temperature": _p(0.8, "sampling temperature", type="number", minimum=0, maximum=2),
    "top_p": _p(0.95, "nucleus sampling", type="number", exclusiveMinimum=0, maximum=1),
    "max_new_tokens": _p(512, "limit on new tokens per translation", type="integer", minimum=1,
                         maximum=8192),
    "rouge_threshold": _p(0.6, "ROUGE-L near-duplicate threshold within a function",
                          type="number", exclusiveMinimum=0, maximum=1),
    "timeout": _p(None, "seconds per translated program in the sandbox (null = the language's "
                  "default)", type=["null", "number"], exclusiveMinimum=0, maximum=600),
    "shards": _p(4, "shards per language (parallel generation, sandbox and collect tasks)",
                 type="integer", minimum=1, maximum=256),
    "replay_source": _p(None, "replay backend: completion folder or JSONL (`{lang}` = each "
                        "language code)", type=["null", "string"]),
    "other_inputs": _p("run", "a tests dataset announced to this Asset-triggered run besides the "
                       "one it processes (its newest event's): run = start a run of this DAG "
                       "for it (none while out is set), log = only name it in the other_inputs "
                       "task's log with the conf to start one by hand (the main job sets log)",
                       type="string", enum=["run", "log"]),
}


def resolved_params(params, dag_run, triggering_asset_events) -> tuple[dict, set[str]]:
    """This run's settings (Params <- the `multiplt_translate` Variable <- conf), with `tests` set
    from the triggering tests event, if any, and the keys whose value came from the Variable
    (chain.chained_settings). Reads the Variable: call it in a task."""
    from multiplt_pipelines import chain

    return chain.chained_settings("multiplt_translate", params, dag_run, PARAMS, triggering_asset_events,
                                  asset=TESTS_ASSET, key="tests_uri", param="tests")


def require_tests(params: dict, data_uri: str) -> None:
    """EmptyInput when the run's tests dataset holds no row (reads storage); checks.BadParams
    when the run names none (run_inputs)."""
    from multiplt.translation.source import tests_files
    from multiplt_pipelines.chain import require_rows

    tests = run_inputs(params, data_uri)["tests"]
    require_rows("tests dataset", tests, lambda: tests_files(tests))


def dataset_announcement(params: dict, data_uri: str, lang: str) -> dict:
    """One language's dataset Asset event extra, from the run's funnel.json (reads storage);
    EmptyInput when the language kept 0 rows. `params`: the settings `plan` returned
    (`translation_run`)."""
    from multiplt import storage
    from multiplt_pipelines.chain import announcement

    params = run_inputs(params, data_uri)
    out = params["out"]
    funnel_uri = storage.join(out, "funnel.json")
    counts = storage.read_json(funnel_uri).get(lang, {})
    return announcement(f"translate {lang}", int(counts.get("after_rouge_l", 0)), {
        "dataset_uri": out, "lang": lang, "split": SPLITS[lang], "model": params["model"],
        "tests_uri": params["tests"], "funnel_uri": funnel_uri})


def translation_run(params: dict, data_uri: str) -> dict:
    """What `plan` returns: the run's `settings` (`tests` and `out` filled in), which
    `summary_argvs` and `announce_<lang>` read instead of resolving the Variable again, and the `entries`."""
    settings = run_inputs(params, data_uri)
    return {"settings": settings, "entries": translation_plan(settings, data_uri)}


def translation_plan(params: dict, data_uri: str) -> list[dict]:
    """One entry per (language, shard): the sample, execute and collect command lines."""
    params = run_inputs(params, data_uri)
    tests, out = params["tests"], params["out"]
    shards = int(params["shards"])
    common = ["--tests", tests, "--out", out, "--backend", params["backend"], "--model",
              params["model"], "--n", str(params["n"]), "--temperature", str(params["temperature"]),
              "--top-p", str(params["top_p"]), "--max-new-tokens", str(params["max_new_tokens"]),
              "--rouge-threshold", str(params["rouge_threshold"])]
    for flag, key in (("--revision", "revision"), ("--api-base", "api_base"),
                      ("--replay-source", "replay_source")):
        if params.get(key):
            common += [flag, str(params[key])]
    timeout = ["--timeout", str(params["timeout"])] if params.get("timeout") else []
    entries = []
    for code in params["languages"]:
        for k in range(shards):
            shard = f"{k}/{shards}"
            base = ["translate", "--lang", code, "--shard", shard, *common]
            completions = _join(out, "work", code, f"{k}-of-{shards}", "completions")
            entries.append({"lang": code, "shard": shard, "out": out,
                            "sample": base + ["--stage", "sample"],
                            "execute": ["execute", "--in", completions, "--allow-empty",
                                        *timeout],
                            "collect": base + ["--stage", "collect"]})
    return entries


def summary_command(params: dict, data_uri: str) -> list[str]:
    params = run_inputs(params, data_uri)
    out, tests = params["out"], params["tests"]
    extra = ["--replay-source", params["replay_source"]] if params.get("replay_source") else []
    return ["translate", "--stage", "summary", "--lang", ",".join(params["languages"]), "--tests",
            tests, "--out", out, "--backend", params["backend"], "--model", params["model"], *extra]
