"""Params and plan of `multiplt_translate` (pure functions, no I/O).

Storage under the `[multiplt] data_uri` root: the step-1 tests dataset at `testgen/tests`
(the `multiplt_testgen_tests` Asset of `multiplt_testgen`), the translated dataset at
`translate/` (`data/<split>-*.parquet`, `excluded/`, `funnel.json`, `work/<lang>/<K>-of-<N>/`).
"""

from __future__ import annotations

from multiplt import languages
from multiplt_pipelines.chain import DATASET_ASSET_PREFIX, TESTS_ASSET  # noqa: F401 (the DAG's names)
from multiplt_pipelines.params import BACKEND_NAMES, LANGUAGES_SCHEMA, TARGET_LANGUAGES

#: the published split name of each target language: dataset files are data/<split>-*.parquet
SPLITS = {code: languages.get(code).name for code in TARGET_LANGUAGES}


def _join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])


def tests_uri(data_uri: str) -> str:
    return _join(data_uri, "testgen", "tests")


def out_uri(data_uri: str) -> str:
    return _join(data_uri, "translate")


def dataset_asset_uri(data_uri: str, code: str) -> str:
    """The prefix of one language's dataset files (`<out>/data/<split>`)."""
    return _join(out_uri(data_uri), "data", SPLITS[code])


def _p(default, description: str, **schema) -> dict:
    return {"default": default, "description": description, **schema}


PARAMS = {
    "tests": _p(None, "step-1 tests dataset (null = <data_uri>/testgen/tests, multiplt_testgen's "
                "output)", type=["null", "string"]),
    "out": _p(None, "dataset folder (null = <data_uri>/translate)", type=["null", "string"]),
    "languages": _p(list(TARGET_LANGUAGES), "target languages",
                    **{**LANGUAGES_SCHEMA, "items": {"type": "string", "enum": TARGET_LANGUAGES}}),
    "model": _p("bigcode/starcoderbase", "the translating model (MultiPL-T: StarCoderBase-15B)",
                type="string", minLength=1),
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
}


def resolved_params(params, dag_run, triggering_asset_events) -> dict:
    """This run's settings (Params <- the `multiplt_translate` Variable <- conf), with `tests` set
    from the triggering tests event, if any (chain.py). Reads the Variable: call it in a task."""
    from multiplt_pipelines import chain

    settings = chain.run_settings("multiplt_translate", params, dag_run)
    return chain.chained_input(settings, chain.asset_events(triggering_asset_events),
                               asset=TESTS_ASSET, key="tests_uri", param="tests")


def require_tests(params: dict, data_uri: str) -> None:
    """EmptyInput when the run's tests dataset holds no row (reads storage)."""
    from multiplt.translation.source import tests_files
    from multiplt_pipelines.chain import require_rows

    tests = params.get("tests") or tests_uri(data_uri)
    require_rows("tests dataset", tests, lambda: tests_files(tests))


def dataset_announcement(params: dict, data_uri: str, lang: str) -> dict:
    """One language's dataset Asset event extra, from the run's funnel.json (reads storage);
    EmptyInput when the language kept 0 rows."""
    from multiplt import storage
    from multiplt_pipelines.chain import announcement

    out = params.get("out") or out_uri(data_uri)
    funnel_uri = storage.join(out, "funnel.json")
    counts = storage.read_json(funnel_uri).get(lang, {})
    return announcement(f"translate {lang}", int(counts.get("after_rouge_l", 0)), {
        "dataset_uri": out, "lang": lang, "split": SPLITS[lang], "model": params["model"],
        "tests_uri": params.get("tests") or tests_uri(data_uri), "funnel_uri": funnel_uri})


def translation_plan(params: dict, data_uri: str) -> list[dict]:
    """One entry per (language, shard): the sample, execute and collect command lines."""
    tests = params.get("tests") or tests_uri(data_uri)
    out = params.get("out") or out_uri(data_uri)
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
    out = params.get("out") or out_uri(data_uri)
    tests = params.get("tests") or tests_uri(data_uri)
    extra = ["--replay-source", params["replay_source"]] if params.get("replay_source") else []
    return ["translate", "--stage", "summary", "--lang", ",".join(params["languages"]), "--tests",
            tests, "--out", out, "--backend", params["backend"], "--model", params["model"], *extra]
