"""`multiplt translate`, one language and one shard at a time (paths under the output URI):

    build     step-1 rows -> problems          work/<code>/<K>-of-<N>/problems.jsonl (+ report)
    sample    the generation driver            work/<code>/<K>-of-<N>/completions/<sha1>.json.gz
    validate  the sandboxed executor           .../completions/<sha1>.results.json.gz
    collect   clean, TODO, exact + ROUGE-L     data/, excluded/, funnel.json

Every step resumes: problems are built once per shard (a rerun on other input is refused),
sampling and execution do only the missing samples and programs (their own rerun contracts),
and collection reuses its finished parts. `stage` runs a subset: `sample` (build + sample, the
GPU part), `collect` (after `multiplt execute` on the completions folder), `all`, or `summary`
(only rewrite URI/funnel.json and the card from the shards' funnels, once every shard is done).
"""

from __future__ import annotations

import dataclasses
import logging

from multiplt import storage
from multiplt.errors import MultipltError
from multiplt.log import Funnel, progress
from multiplt.storage.outputs import check_out, first_file, refuse_foreign
from multiplt.testgen.config import absolute_input
from multiplt.translation.config import TranslateConfig

LOG = logging.getLogger("multiplt.translation")


def work_uri(out: str, code: str, shard: tuple[int, int]) -> str:
    """The folder of one language's shard: problems, completions and results, collect parts."""
    return storage.join(out, "work", code, f"{shard[0]}-of-{shard[1]}")


def completions_uri(out: str, code: str, shard: tuple[int, int]) -> str:
    return storage.join(work_uri(out, code, shard), "completions")


def build_problems(rows: list[dict], fingerprint: str, lang, work: str) -> tuple[list[dict], dict]:
    """The shard's problems (built once; reused by reruns of the same input)."""
    from multiplt.translation.problems import build_problem

    uri, report_uri = storage.join(work, "problems.jsonl"), storage.join(work, "problems.report.json")
    names = [r["sha1"] for r in rows]
    if storage.exists(report_uri):
        report = storage.read_json(report_uri)
        if report.get("input_sha256") != fingerprint or report.get("functions") != names:
            raise MultipltError(f"{work} was built from another tests dataset, shard or --limit; "
                                "use another --out")
        return storage.read_jsonl(uri), report
    funnel = Funnel(f"translate {lang.code} problems")
    problems, excluded = [], []
    for row in progress(rows, total=len(rows), desc=f"build {lang.code}", unit="function"):
        built = build_problem(row, lang)
        if built.row is None:
            funnel.drop(built.drop)
            excluded.append({"sha1": row["sha1"], "id": row.get("id"), "entrypoint": row["entrypoint"],
                             "stage": "build", "reason": f"{built.drop}: {built.reason}"})
        else:
            funnel.keep()
            problems.append(built.row)
    funnel.log(LOG)
    report = {"input_sha256": fingerprint, "language": lang.code, "functions": names,
              "prompts_built": len(problems), "dropped": dict(funnel.dropped), "excluded": excluded}
    storage.write_jsonl(uri, problems)
    storage.write_json(report_uri, report)  # last: its presence means the build is complete
    return problems, report


def translate_language(cfg: TranslateConfig, code: str, rows: list[dict],
                       fingerprint: str) -> dict:
    from multiplt import languages

    lang = languages.get(code)
    work = work_uri(cfg.out, lang.code, cfg.shard)
    completions = completions_uri(cfg.out, lang.code, cfg.shard)
    problems, report = build_problems(rows, fingerprint, lang, work)
    problems_uri = storage.join(work, "problems.jsonl")
    if cfg.stage in ("all", "sample") and problems:
        from multiplt.generation.driver import generate

        replay = cfg.replay_source.replace("{lang}", lang.code) if cfg.replay_source else None
        generate(problems_uri, completions, backend=cfg.backend, model=cfg.model_label if
                 cfg.backend == "replay" else cfg.model, revision=cfg.revision, tokenizer=cfg.tokenizer,
                 n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p,
                 max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size, seed=cfg.seed,
                 api_base=cfg.api_base, concurrency=cfg.concurrency, replay_source=replay)
    if cfg.stage == "all" and problems:
        from multiplt.execution.executor import execute

        execute(completions, workers=cfg.workers, timeout=cfg.timeout,
                unsafe_no_sandbox=cfg.unsafe_no_sandbox,
                labels=("translate's completions folder",) * 2)
    if cfg.stage == "sample":
        return {"language": lang.code, "problems": len(problems)}
    return _collect(cfg, lang, rows, problems, report, work, completions)


def _collect(cfg, lang, rows, problems, report, work, completions) -> dict:
    from multiplt.generation import folder
    from multiplt.translation import writer
    from multiplt.translation.collect import collect

    done = _finished(cfg, lang)
    if done is not None:
        return done
    run_record = (folder.read_run(completions) or {}) if problems else {}
    run = {"model": run_record.get("model", cfg.model_label), "revision": run_record.get("revision")}
    kept, excluded, counts = collect(problems, completions, work, lang.code, cfg.rouge_threshold,
                                     run, cfg.n)
    excluded = report["excluded"] + excluded
    counts = {"functions_in": len(rows), "prompts_built": report["prompts_built"], **counts}
    funnel = {"language": lang.code, "split": lang.split, "shard": writer.shard_tag(cfg.shard),
              "counts": counts, "dropped": report["dropped"]}
    # the generation's run record without its selection (every prompt's name: thousands a shard)
    run_config = {key: value for key, value in run_record.items() if key != "problems"}
    config = {**dataclasses.asdict(cfg), "language": lang.code, "input_sha256": report["input_sha256"],
              "run": run_config, "versions": _versions()}
    writer.write_shard(cfg.out, lang.code, lang.split, cfg.shard, kept, excluded, funnel, config)
    LOG.info("translate %s funnel: %s", lang.code, ", ".join(f"{k}={v}" for k, v in counts.items()))
    return funnel


def _versions() -> dict:
    from importlib import metadata

    from multiplt import __version__

    return {"multiplt": __version__, "rouge-score": metadata.version("rouge-score")}


def _finished(cfg: TranslateConfig, lang) -> dict | None:
    """The shard's funnel when its dataset file is already written (a rerun writes nothing)."""
    from multiplt.translation import writer

    if not storage.exists(writer.data_uri(cfg.out, lang.split, cfg.shard)):
        return None
    config = storage.read_json(writer.config_uri(cfg.out, lang.code, cfg.shard))
    if config.get("n") != cfg.n:
        return None  # more (or fewer) samples per function: collect again
    if config.get("rouge_threshold") != cfg.rouge_threshold:
        raise MultipltError(f"{writer.data_uri(cfg.out, lang.split, cfg.shard)} was written with "
                            f"--rouge-threshold {config.get('rouge_threshold')}; use another --out")
    LOG.info("translate %s: shard %s already written", lang.code, writer.shard_tag(cfg.shard))
    writer.write_summary(cfg.out)  # a run killed after a data file, before the summary: mended
    return storage.read_json(writer.funnel_uri(cfg.out, lang.code, cfg.shard))


def languages_code(code: str) -> str:
    from multiplt import languages

    return languages.get(code).code


def _check_own_folder(out: str) -> None:
    """An --out that holds files must be a translate output: every shard writes under `work/`
    first (its problems) and data/, excluded/, config/, funnel/ and the card only after, so
    `work/` holding a file marks one, also while other shards or languages are writing."""
    refuse_foreign(out, lambda: first_file(storage.join(out, "work")) is not None)


def _check_shard_layout(cfg: TranslateConfig) -> None:
    """One --out holds one sharding of a run: shards K/N of another N would write data files and
    funnels that the summary adds up twice."""
    from multiplt import languages

    for code in cfg.langs:
        code = languages.get(code).code
        found = {storage.basename(u.rstrip("/")) for u in storage.ls(storage.join(cfg.out, "work", code))
                 if u.endswith("/")}
        other = sorted(n for n in found if n.rsplit("-of-", 1)[-1] != str(cfg.shard[1]))
        if other:
            raise MultipltError(f"{cfg.out} holds {code} shards of another layout ({', '.join(other[:3])}) than "
                                f"{cfg.shard[0]}-of-{cfg.shard[1]}: every shard of a run uses the same N; use "
                                f"another --out")


def _check_collected(cfg: TranslateConfig) -> None:
    """`--stage summary` adds up the shards' funnels: a language of which no shard has been
    collected yet (no OUT/funnel/<code>-K-of-N.json) is refused, before anything is written, rather
    than summed to an empty funnel and a card without its split."""
    import re

    folder = storage.join(cfg.out, "funnel")
    names = {storage.basename(u) for u in storage.ls(folder)} if storage.exists(folder) else set()
    missing = []
    for code in cfg.langs:
        code = languages_code(code)
        if not any(re.fullmatch(rf"{re.escape(code)}-\d+-of-\d+\.json", name) for name in names):
            missing.append(code)
    if missing:
        raise MultipltError(f"--stage summary: {cfg.out} holds no collected shard of {', '.join(missing)}; "
                            f"run the collect stage first (--stage collect after sample and execute, "
                            f"or --stage all) for every shard")


def translate(cfg: TranslateConfig) -> dict:
    """Run the configured stage for every language of one shard; returns the funnels."""
    from multiplt.translation.source import load_rows

    cfg.check()
    # recorded in config/<lang>-K-of-N.json as a place that holds from any folder (a resumed run
    # compares the input's sha256, not this spelling)
    cfg = dataclasses.replace(cfg, tests=absolute_input(cfg.tests))
    check_out(cfg.out)  # the URI itself, before any path is made from it
    _check_own_folder(cfg.out)
    if cfg.stage == "summary":
        from multiplt.translation import writer

        _check_collected(cfg)
        merged = writer.write_summary(cfg.out)
        return {code: merged.get(languages_code(code), {}) for code in cfg.langs}
    if cfg.backend == "replay" and cfg.stage not in ("collect", "summary"):
        from multiplt import languages

        for code in cfg.langs:
            source = cfg.replay_source.replace("{lang}", languages.get(code).code)
            if not storage.exists(source):
                raise MultipltError(f"replay source {source} does not exist")
    _check_shard_layout(cfg)
    rows, total, fingerprint = load_rows(cfg.tests, cfg.shard)
    if cfg.limit is not None:
        rows = rows[:cfg.limit]
    LOG.info("translate: %d of %d functions in shard %d/%d, languages %s", len(rows), total,
             cfg.shard[0], cfg.shard[1], ",".join(cfg.langs))
    return {code: translate_language(cfg, code, rows, fingerprint) for code in cfg.langs}
