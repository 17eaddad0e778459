"""`multiplt translate`, one language and one shard at a time (paths under the output URI):

    build     step-1 rows -> problems          work/<code>/<K>-of-<N>/problems.jsonl (+ report)
    sample    the generation driver            work/<code>/<K>-of-<N>/completions/<sha1>.json.gz
    validate  the sandboxed executor           .../completions/<sha1>.results.json.gz
    collect   clean, TODO, exact + ROUGE-L     data/, excluded/, funnel.json

Every step resumes: problems are built once per shard (a rerun on other input is refused),
sampling and execution do only the missing samples and programs (their own rerun contracts),
and collection reuses its finished parts. `stage` runs a subset: `sample` (build + sample, the
GPU part), `collect` (after `multiplt execute` on the completions folder; refused, before anything
is written, for a shard not sampled yet), `all`, or `summary` (only rewrite URI/funnel.json and
the card from the shards' funnels; refused while a shard of a language of --lang is not
collected). funnel.json and the card cover a language once every shard of it is collected.
"""

from __future__ import annotations

import dataclasses
import logging
import re

from multiplt import storage
from multiplt.errors import MultipltError
from multiplt.log import Funnel, progress
from multiplt.storage.outputs import check_out, refuse_foreign
from multiplt.testgen.config import absolute_input
from multiplt.translation.config import TranslateConfig

LOG = logging.getLogger("multiplt.translation")


def work_uri(out: str, code: str, shard: tuple[int, int]) -> str:
    """The folder of one language's shard: problems, completions and results, collect parts."""
    return storage.join(out, "work", code, f"{shard[0]}-of-{shard[1]}")


def completions_uri(out: str, code: str, shard: tuple[int, int]) -> str:
    return storage.join(work_uri(out, code, shard), "completions")


#: a shard's problems.report.json holds this key (true) when its problems' tests are sealed by a
#: nonce (problems.build_problem): one without it was built by an older multiplt, whose programs
#: and verdicts cannot show that the tests ran, and is refused (_check_sealed)
SEALED = "tests_nonce"
#: the version of the sealed tests and their static check (Language.seal_tests,
#: Language.tampers_with_tests) a shard's problems.report.json was built with, under this key: a
#: shard of an older seal (none: before the harness could not be redefined) is refused too
SEAL, SEAL_VERSION = "seal", 2


def build_problems(rows: list[dict], fingerprint: str, lang, work: str,
                   duplicates: list[dict] = (), built: tuple[list[dict], dict] | None = None
                   ) -> tuple[list[dict], dict]:
    """The shard's problems (built once; reused by reruns of the same input). `duplicates`: the
    rows of the shard that repeat an earlier row's sha1 (`source.load_rows`), each dropped as
    `duplicate_sha1` (as testgen drops them), so the funnel's `functions_in` counts every row.
    `built`: the problems and report `make_problems` made of these rows (checked before
    anything was written), written as they are."""
    uri, report_uri = storage.join(work, "problems.jsonl"), storage.join(work, "problems.report.json")
    names = [r["sha1"] for r in rows]
    if storage.exists(report_uri):
        report = storage.read_json(report_uri)
        if report.get("input_sha256") != fingerprint or report.get("functions") != names:
            raise MultipltError(f"{work} was built from another tests dataset, shard or --limit; "
                                "use another --out")
        return storage.read_jsonl(uri), report
    problems, report = built if built is not None else make_problems(rows, fingerprint, lang, duplicates)
    storage.write_jsonl(uri, problems)
    storage.write_json(report_uri, report)  # last: its presence means the build is complete
    return problems, report


def make_problems(rows: list[dict], fingerprint: str, lang, duplicates: list[dict] = ()
                  ) -> tuple[list[dict], dict]:
    """(problems, report) of the shard's rows in `lang`, in memory. The report: the input and
    its functions, the funnel's build counts (`functions_in`, `prompts_built`, `tests_in`: the
    asserts of the rows, repeats of a sha1 not counted; `tests_translated`: those that became
    tests of a built problem), `dropped` (reasons with counts), `excluded` (a row per dropped
    function) and `dropped_tests` (per sha1, each assert that was not translated, with its
    reason: those of dropped functions too)."""
    from multiplt.translation.problems import build_problem

    funnel = Funnel(f"translate {lang.code} problems")
    problems, excluded, dropped_tests = [], [], {}
    for row in duplicates:
        funnel.drop("duplicate_sha1")
        excluded.append({"sha1": row["sha1"], "id": row.get("id"), "entrypoint": row.get("entrypoint"),
                         "stage": "build", "reason": "duplicate_sha1: same sha1 as an earlier row"})
    for row in progress(rows, total=len(rows), desc=f"build {lang.code}", unit="function"):
        built = build_problem(row, lang)
        if built.dropped_tests:
            dropped_tests[row["sha1"]] = built.dropped_tests
        if built.row is None:
            funnel.drop(built.drop)
            excluded.append({"sha1": row["sha1"], "id": row.get("id"), "entrypoint": row["entrypoint"],
                             "stage": "build", "reason": f"{built.drop}: {built.reason}"})
        else:
            funnel.keep()
            problems.append(built.row)
    funnel.log(LOG)
    report = {"input_sha256": fingerprint, "language": lang.code, "functions": [r["sha1"] for r in rows],
              "functions_in": len(rows) + len(duplicates), "prompts_built": len(problems),
              "tests_in": sum(len(list(r.get("tests") or [])) for r in rows),
              "tests_translated": sum(p["translated_tests"] for p in problems), SEALED: True,
              SEAL: SEAL_VERSION, "dropped": dict(funnel.dropped), "excluded": excluded, "dropped_tests": dropped_tests}
    return problems, report


def translate_language(cfg: TranslateConfig, code: str, rows: list[dict],
                       fingerprint: str, duplicates: list[dict] = (),
                       built: tuple[list[dict], dict] | None = None) -> dict:
    from multiplt import languages

    lang = languages.get(code)
    work = work_uri(cfg.out, lang.code, cfg.shard)
    completions = completions_uri(cfg.out, lang.code, cfg.shard)
    problems, report = build_problems(rows, fingerprint, lang, work, duplicates, built)
    problems_uri = storage.join(work, "problems.jsonl")
    if cfg.stage in ("all", "sample") and problems:
        from multiplt.generation.driver import generate

        generate(problems_uri, completions, backend=cfg.backend, model=cfg.model_label if
                 cfg.backend == "replay" else cfg.model, revision=cfg.revision, tokenizer=cfg.tokenizer,
                 n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p,
                 max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size, seed=cfg.seed,
                 api_base=cfg.api_base, concurrency=cfg.concurrency,
                 replay_source=_replay_source(cfg, lang.code))
    if cfg.stage == "all" and problems:
        from multiplt.execution.executor import execute

        execute(completions, workers=cfg.workers, timeout=cfg.timeout,
                unsafe_no_sandbox=cfg.unsafe_no_sandbox,
                labels=("translate's completions folder",) * 2,
                private=(("--out", cfg.out),))
    if cfg.stage == "sample":
        return {"language": lang.code, "problems": len(problems)}
    return _collect(cfg, lang, rows, problems, report, work, completions)


def _collect(cfg, lang, rows, problems, report, work, completions) -> dict:
    from multiplt import provenance
    from multiplt.generation import folder
    from multiplt.translation import writer
    from multiplt.translation.collect import collect

    done = _finished(cfg, lang, report)
    if done is not None:
        return done
    run_record = (folder.read_run(completions) or {}) if problems else {}
    run = {"model": run_record.get("model", cfg.model_label), "revision": run_record.get("revision")}
    kept, excluded, counts = collect(problems, completions, work, lang.code, cfg.rouge_threshold,
                                     run, cfg.n)
    dropped = dropped_reasons(report["dropped"], excluded)
    excluded = report["excluded"] + excluded
    # every row of the shard, repeats of a sha1 included (a report from before they were counted
    # has no functions_in: its rows then)
    counts = {"functions_in": report.get("functions_in", len(rows)), "prompts_built": report["prompts_built"],
              "tests_in": report["tests_in"], "tests_translated": report["tests_translated"], **counts}
    funnel = {"language": lang.code, "split": lang.split, "shard": writer.shard_tag(cfg.shard),
              "counts": counts, "dropped": dropped}
    # the generation's run record without its selection (every prompt's name: thousands a shard)
    run_config = {key: value for key, value in run_record.items() if key != "problems"}
    # `provenance`: the code and libraries of this collect (the sampling's are in `run`'s own);
    # no part of what a rerun compares (_finished, _check_threshold)
    made_by = provenance.describe(provenance.TRANSLATE)
    config = {**dataclasses.asdict(cfg), "language": lang.code, "input_sha256": report["input_sha256"],
              "run": run_config, "versions": _versions(made_by), "provenance": made_by}
    writer.write_shard(cfg.out, lang.code, lang.split, cfg.shard, kept, excluded, funnel, config)
    LOG.info("translate %s funnel: %s", lang.code, ", ".join(f"{k}={v}" for k, v in counts.items()))
    return funnel


# the stages of collect's excluded rows, in funnel order (the build's come first)
SAMPLE_STAGES = ("validate", "clean", "dedup")
_SCORE = re.compile(r" \S+ > \S+$")  # "near duplicate (ROUGE-L) 0.7143 > 0.6": the pair's own


def dropped_reasons(build: dict, samples: list[dict]) -> dict:
    """A shard funnel's `dropped`: why functions and samples were dropped, with counts. First
    the build's reasons (functions: they add up to functions_in - prompts_built), then those of
    collect's excluded rows (samples: validate, clean, dedup, adding up to translations_sampled -
    after_rouge_l), each as its excluded rows say it, less a ROUGE-L pair's score and what a
    refused redefinition of the test harness was, most first within a stage."""
    from multiplt.translation.collect import TAMPERS

    counts: dict[tuple[int, str], int] = {}
    for row in samples:
        label = _SCORE.sub("", row["reason"]) if row["stage"] == "dedup" else row["reason"]
        label = TAMPERS if label.startswith(f"{TAMPERS}: ") else label
        key = (SAMPLE_STAGES.index(row["stage"]), label)
        counts[key] = counts.get(key, 0) + 1
    dropped = dict(build)
    for (_, label), n in sorted(counts.items(), key=lambda item: (item[0][0], -item[1], item[0][1])):
        dropped[label] = dropped.get(label, 0) + n
    return dropped


def _adds_up(funnel: dict, build: dict) -> bool:
    """Whether a shard funnel's `dropped` counts every dropped function and sample (a funnel
    written before `dropped` held collect's reasons has only the build's)."""
    counts, dropped = funnel["counts"], funnel.get("dropped", {})
    samples = sum(dropped.values()) - sum(build.values())
    return counts.get("translations_sampled", 0) - counts.get("after_rouge_l", 0) == samples


def _versions(made_by: dict) -> dict:
    """The config's `versions` block, kept as it was, from its `provenance` (`made_by`)."""
    from multiplt import provenance

    return {"multiplt": made_by["multiplt"],
            "rouge-score": made_by["libraries"].get("rouge-score", provenance.UNKNOWN)}


def _check_threshold(cfg: TranslateConfig, code: str) -> None:
    """MultipltError when the language's shard is written (its dataset file exists) with another
    --rouge-threshold than this run's, whatever the --n: a collect again (another --n) would
    rewrite it with this run's, and its config would no longer say how the rows were chosen."""
    from multiplt import languages
    from multiplt.translation import writer

    data = writer.data_uri(cfg.out, languages.get(code).split, cfg.shard)
    if not storage.exists(data):
        return
    recorded = storage.read_json(writer.config_uri(cfg.out, code, cfg.shard)).get("rouge_threshold")
    if recorded != cfg.rouge_threshold:
        raise MultipltError(f"{data} was written with --rouge-threshold {recorded}; use another --out")


def _finished(cfg: TranslateConfig, lang, report: dict) -> dict | None:
    """The shard's funnel when its dataset file is already written (a rerun writes nothing,
    except a funnel whose `dropped` lacks collect's reasons, written before it held them: it
    gets them from the shard's excluded rows)."""
    from multiplt.translation import writer

    if not storage.exists(writer.data_uri(cfg.out, lang.split, cfg.shard)):
        return None
    _check_threshold(cfg, lang.code)  # also when collected again (another --n)
    config = storage.read_json(writer.config_uri(cfg.out, lang.code, cfg.shard))
    if config.get("n") != cfg.n:
        return None  # more (or fewer) samples per function: collect again
    LOG.info("translate %s: shard %s already written", lang.code, writer.shard_tag(cfg.shard))
    funnel_uri = writer.funnel_uri(cfg.out, lang.code, cfg.shard)
    funnel = storage.read_json(funnel_uri)
    if not _adds_up(funnel, report["dropped"]):
        excluded = storage.read_parquet(writer.excluded_uri(cfg.out, lang.split, cfg.shard))
        samples = [r for r in excluded.select("stage", "reason").iter_rows(named=True)
                   if r["stage"] in SAMPLE_STAGES]
        mended = dropped_reasons(report["dropped"], samples)
        if mended != funnel.get("dropped"):  # else mended before (a rerun writes nothing)
            funnel["dropped"] = mended
            storage.write_json(funnel_uri, funnel, indent=2)
            LOG.info("translate %s: shard %s's funnel now counts the dropped samples' reasons",
                     lang.code, writer.shard_tag(cfg.shard))
    # a run killed after a data file, before the summary: mended (and a mended funnel summed)
    writer.write_summary(cfg.out, report=(lang.code,))
    return funnel


def languages_code(code: str) -> str:
    from multiplt import languages

    return languages.get(code).code


def translate_output_file(out: str) -> str | None:
    """Where OUT holds a file that only translate writes, as a path relative to OUT (the shard's
    folder `work/<code>/K-of-N/`, or the config file), or None: a shard's problems
    (`work/<code>/K-of-N/problems.jsonl`, the first file every shard of every language
    writes, so shards and languages starting at once see each other's) or a shard's config
    (`config/<code>-K-of-N.json`). Not "work/ holds a file": testgen's output has a work/ too
    (testgen refuses an --out where this finds a file)."""
    import re

    from multiplt import languages

    codes = set(languages.names())
    shard = re.compile(r"\d+-of-\d+")
    work = storage.join(out, "work")
    for folder in storage.ls(work) if storage.exists(work) else []:
        code = storage.basename(folder.rstrip("/"))
        if folder.endswith("/") and code in codes:
            for sub in storage.ls(folder):
                name = storage.basename(sub.rstrip("/"))
                if sub.endswith("/") and shard.fullmatch(name) and \
                        storage.exists(storage.join(sub, "problems.jsonl")):
                    return f"work/{code}/{name}/"
    config = storage.join(out, "config")
    names = [storage.basename(u) for u in storage.ls(config)] if storage.exists(config) else []
    pattern = rf"({'|'.join(map(re.escape, codes))})-\d+-of-\d+\.json"
    return next((f"config/{n}" for n in names if re.fullmatch(pattern, n)), None)


def _check_own_folder(out: str) -> None:
    """An --out that holds files must be a translate output (`translate_output_file`); another
    command's output (testgen's, with its own work/ and funnel.json) is refused before anything
    is written into it."""
    refuse_foreign(out, lambda: translate_output_file(out) is not None)


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
    """`--stage summary` adds up the shards' funnels: a language of `--lang` of which a shard is
    not collected yet (no funnel/<code>-K-of-N.json and data file for some K of its N, as the
    -of-N of its shards says) is refused, before anything is written, naming the shards; so is
    one of which no shard has been collected, rather than summed to an empty funnel."""
    from multiplt.translation import writer

    status = writer.shard_status(cfg.out)
    none, partial = [], []
    for code in dict.fromkeys(languages_code(c) for c in cfg.langs):
        lang = status.get(code)
        if lang is None or not lang["funnels"]:
            none.append(code)
        elif lang["missing"]:
            missing = lang["missing"]
            partial.append(f"{code} {', '.join(missing[:5])}"
                           f"{f' and {len(missing) - 5} more' if len(missing) > 5 else ''}"
                           f" (of {lang['n']} shards)" if lang["n"] else f"{code} (shards of two layouts)")
    first = ("run the collect stage first (--stage collect after sample and execute, or --stage all) "
             "for every shard")
    if none:
        raise MultipltError(f"--stage summary: {cfg.out} holds no collected shard of {', '.join(none)}; "
                            f"{first}")
    if partial:
        raise MultipltError(f"--stage summary: {cfg.out} lacks collected shards: {'; '.join(partial)}; "
                            f"{first}")


def _replay_source(cfg: TranslateConfig, code: str) -> str | None:
    """The language's replay source: `{lang}` in --replay-source is its code (None without one)."""
    return cfg.replay_source.replace("{lang}", code) if cfg.replay_source else None


def _unbuilt(cfg: TranslateConfig) -> list[str]:
    """The codes of --lang whose shard has no built problems yet (no
    `work/<code>/K-of-N/problems.report.json`, which build_problems writes last)."""
    return [code for code in dict.fromkeys(languages_code(c) for c in cfg.langs)
            if not storage.exists(storage.join(work_uri(cfg.out, code, cfg.shard), "problems.report.json"))]


def _check_sampled(cfg: TranslateConfig) -> None:
    """`--stage collect` reads the problems and completions the sample stage wrote: a language
    whose shard has no built problems yet is refused before anything is written, naming the
    stage to run first."""
    missing = _unbuilt(cfg)
    if missing:
        raise MultipltError(f"--stage collect: shard {cfg.shard[0]}/{cfg.shard[1]} of {', '.join(missing)} "
                            f"has not been sampled in {cfg.out}; run --stage sample first (same flags), "
                            f"then multiplt execute on its completions folder")


def _check_runtimes(cfg: TranslateConfig) -> None:
    """`--stage all` executes the translations of every language of `--lang`, one language after
    the other: one whose runtime is not installed (not on the PATH the sandbox uses, or the host's
    with --unsafe-no-sandbox: what the executor's preflight looks for) is refused once the tests
    are read (their own errors first) and before any sampling, naming every such language,
    rather than after the others' GPU time. Then the executor's preflight runs (check_ready): a
    sandbox that cannot start, or a language whose test library (rackunit, luaunit) is missing or
    whose runtime misbehaves, is refused there too."""
    from multiplt import languages
    from multiplt.execution.preflight import check_runtimes

    check_runtimes([languages.get(code) for code in cfg.langs], cfg.unsafe_no_sandbox,
                   what="the translations")


def _check_sealed(cfg: TranslateConfig) -> None:
    """A shard of a language of --lang built by an older multiplt (its problems.report.json
    without SEALED, or of another SEAL_VERSION), any shard of OUT: its programs' tests print no
    nonce, or ones the translation could redefine, so its verdicts cannot show that the tests
    ran, and resuming it, or summing its funnel and data with those of sealed shards, would mix
    the two. Refused before anything is written, naming the file."""
    for code in dict.fromkeys(languages_code(c) for c in cfg.langs):
        folder = storage.join(cfg.out, "work", code)
        shards = [u for u in storage.ls(folder) if u.endswith("/")] if storage.exists(folder) else []
        for shard in sorted(shards):
            uri = storage.join(shard.rstrip("/"), "problems.report.json")
            report = storage.read_json(uri) if storage.exists(uri) else None
            if report is not None and not report.get(SEALED):
                raise MultipltError(f"{uri} was built by an older multiplt whose translated tests do "
                                    "not show that they ran (no end-of-tests nonce); use another --out")
            if report is not None and report.get(SEAL, 1) != SEAL_VERSION:
                raise MultipltError(f"{uri} was built by an older multiplt whose sealed tests a "
                                    f"translation could redefine (seal {report.get(SEAL, 1)}, this "
                                    f"multiplt's is {SEAL_VERSION}); use a fresh --out")


def _prebuild(cfg: TranslateConfig, rows: list[dict], fingerprint: str,
              duplicates: list[dict]) -> dict[str, tuple[list[dict], dict]]:
    """The problems of every language of --lang whose shard is not built yet, made in memory
    (make_problems) by the stages that sample, so that with --backend replay a replay source
    with fewer than --n completions for a problem is refused (one line, exit 2) before any
    language's problems are written; written later by build_problems."""
    from multiplt import languages

    if cfg.stage not in ("all", "sample") or not rows:
        return {}
    built = {code: make_problems(rows, fingerprint, languages.get(code), duplicates)
             for code in _unbuilt(cfg)}
    if cfg.backend == "replay":
        from multiplt.generation.replay import load_replay

        for code, (problems, _) in built.items():
            source = _replay_source(cfg, code)
            have = load_replay(source)
            short = [p["name"] for p in problems if len(have.get(p["name"], [])) < cfg.n]
            if short:
                raise MultipltError(f"replay source {source} has fewer than {cfg.n} completions (--n) "
                                    f"for {len(short)} {code} problem(s) (by sha1): {', '.join(short[:5])}"
                                    f"{' ...' if len(short) > 5 else ''}")
    return built


def _check_backend(cfg: TranslateConfig, rows: list[dict]) -> None:
    """The model (and tokenizer) the stages that sample load, or each language's replay source
    (a missing one included), checked without loading weights
    (generation.driver.check_backend_source) before a language's shard is first built: its
    problems (problems.jsonl, problems.report.json) record the input and --limit, so a run that
    wrote them and then failed on a mistyped --model or a bad replay source would refuse a
    corrected rerun with another --limit. A shard already built (a rerun of the same model,
    which may have nothing left to sample) is left to the sampling, which loads the backend only
    for samples still missing; so is a shard without rows (nothing to sample: `rows`, the
    shard's rows of --tests)."""
    from multiplt.generation.driver import check_backend_source

    fresh = _unbuilt(cfg) if rows else []
    if not fresh:
        return
    if cfg.backend != "replay":
        check_backend_source(cfg.backend, cfg.model, cfg.revision, cfg.tokenizer)
        return
    for code in fresh:
        check_backend_source("replay", replay_source=_replay_source(cfg, code))


def translate(cfg: TranslateConfig) -> dict:
    """Run the configured stage for every language of one shard; returns the funnels."""
    from multiplt.translation.source import load_rows

    cfg.check()
    # recorded in config/<lang>-K-of-N.json as a place that holds from any folder (a resumed run
    # compares the input's sha256, not this spelling)
    cfg = dataclasses.replace(cfg, tests=absolute_input(cfg.tests))
    check_out(cfg.out)  # the URI itself, before any path is made from it
    _check_own_folder(cfg.out)
    _check_sealed(cfg)
    if cfg.stage == "summary":
        from multiplt.translation import writer

        _check_collected(cfg)
        merged = writer.write_summary(cfg.out, report=tuple(languages_code(c) for c in cfg.langs))
        return {code: merged.get(languages_code(code), {}) for code in cfg.langs}
    _check_shard_layout(cfg)
    for code in dict.fromkeys(languages_code(c) for c in cfg.langs):  # before any sampling
        _check_threshold(cfg, code)
    if cfg.stage == "collect":
        _check_sampled(cfg)
    rows, total, fingerprint, duplicates = load_rows(cfg.tests, cfg.shard)
    if cfg.limit is not None:
        rows = rows[:cfg.limit]
        kept = {r["sha1"] for r in rows}
        duplicates = [d for d in duplicates if d["sha1"] in kept]
    if cfg.stage == "all" and rows:  # after the input's own errors, before any sampling
        _check_runtimes(cfg)
    if cfg.stage in ("all", "sample"):
        _check_backend(cfg, rows)
    built = _prebuild(cfg, rows, fingerprint, duplicates)
    repeats = f" ({len(duplicates)} more row(s) repeat a sha1: dropped as duplicate_sha1)" if duplicates else ""
    LOG.info("translate: %d of %d functions in shard %d/%d, languages %s%s", len(rows), total,
             cfg.shard[0], cfg.shard[1], ",".join(cfg.langs), repeats)
    return {code: translate_language(cfg, code, rows, fingerprint, duplicates,
                                     built.get(languages_code(code))) for code in cfg.langs}
