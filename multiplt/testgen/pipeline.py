"""`multiplt testgen`: one shard of the corpus functions -> tests/, excluded/, funnel.json.

Per shard (work folder `work/<shard>/` under OUT), in three stages that can run as separate tasks
(generation on a GPU worker, validation in the sandbox image, which has no parquet library):
1. `generate`: read and check the rows of the shard (inputs.py; malformed and duplicate rows
   are dropped) into `rows.jsonl`, write the prompts (`prompts.jsonl`, problem name = sha1) and
   sample `--n` completions with the generation driver into `completions/` (its rerun contract:
   per-sample seeds, only missing samples are generated);
2. `validate`: parse the asserts (asserts.py), run them in the sandbox with coverage and types
   (execute.py; saved in `checks/` as they finish), decide each function (outcome.py) into
   `outcomes.jsonl` and the shard's `funnel.json`;
3. `write`: `OUT/tests/<shard>.parquet`, `OUT/excluded/<shard>.parquet`, the shard's config,
   then its `_DONE` marker.
A finished shard is skipped on a rerun over the same rows (`all` and `generate`, the stages that
read `--functions`, compare them first; other rows are refused). When every shard of the run is
done, `OUT/funnel.json` is written over all of them (by whichever shard finishes last).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import re

from multiplt import storage
from multiplt.generation.driver import check_backend_source
from multiplt.log import drop_reasons
from multiplt.settings_diff import differences
from multiplt.storage.outputs import check_out, refuse_foreign
from multiplt.testgen import asserts, funnel, inputs, outcome, prompt
from multiplt.testgen.funnel import DONE
from multiplt.testgen.config import TestgenConfig, absolute_input
from multiplt.testgen.validate import Check, coverage_path

LOG = logging.getLogger("multiplt.testgen")
ROWS = "rows.jsonl"  # the first file a shard writes: it marks --out as testgen's (_check_own_folder)
INPUT = "input.json"  # the listing of --functions that rows.jsonl was read from (_check_done_rows)
OUTCOMES = "outcomes.jsonl"


def _generate(cfg: TestgenConfig, rows: list[dict], work: str) -> dict[str, list[str]]:
    """Completions per sha1, from the generation driver (resumable per sample)."""
    from multiplt.generation import folder
    from multiplt.generation.driver import generate

    prompts_uri = storage.join(work, "prompts.jsonl")
    storage.write_jsonl(prompts_uri, [prompt.generation_row(r) for r in rows])
    completions = storage.join(work, "completions")
    generate(prompts_uri, completions, backend=cfg.backend, model=cfg.model,
             revision=cfg.revision, tokenizer=cfg.tokenizer, n=cfg.n,
             temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
             batch_size=cfg.batch_size, seed=cfg.seed, replay_source=cfg.replay_source,
             api_base=cfg.api_base, concurrency=cfg.concurrency, experiment="testgen")
    return {r["sha1"]: folder.read_problem(completions, r["sha1"])["completions"] for r in rows}


def _select(cfg: TestgenConfig, counts: dict) -> tuple[list[dict], list[dict]]:
    """(usable rows of the shard, excluded rows with reason and detail)."""
    df = inputs.read_functions(cfg.functions)
    usable, excluded, seen = [], [], set()
    for row in df.iter_rows(named=True):
        if not inputs.in_shard(row.get("sha1"), cfg.shard):
            continue
        counts["input"] += 1
        why = inputs.malformed(row)
        if why:
            excluded.append({**row, "reason": "malformed_row", "detail": why})
        elif row["sha1"] in seen:
            excluded.append({**row, "reason": "duplicate_sha1", "detail": "same sha1 as an earlier row"})
        else:
            seen.add(row["sha1"])
            usable.append(row)
    if not usable:
        _refuse_all_malformed(cfg.functions, df)
    return usable, excluded


def _refuse_all_malformed(uri: str, df) -> None:
    """MultipltError when no row of the whole input is usable (inputs.all_malformed). Only a
    shard without usable rows looks further, and stops at the first usable row of another shard."""
    from multiplt.errors import MultipltError

    found = inputs.all_malformed(df.iter_rows(named=True))
    if found is not None:
        first, reason = found
        raise MultipltError(f"functions dataset {uri}: all {df.height} rows are malformed; the first "
                            f"(row 0, id {first.get('id')!r}): {reason}")


STAGES = ("all", "generate", "validate", "write")


def run(cfg: TestgenConfig, stage: str = "all") -> dict:
    """Run one shard, or one stage of it: `generate` (rows and completions; GPU),
    `validate` (asserts in the sandbox, outcomes), `write` (parquet, funnels)."""
    from multiplt.errors import MultipltError

    if stage not in STAGES:
        raise MultipltError(f"unknown testgen stage {stage!r} (choose from {', '.join(STAGES)})")
    cfg.check(stage)
    # recorded in work/<shard>/config.json as a place that holds from any folder (a resumed run
    # compares its rows, not this spelling)
    cfg = dataclasses.replace(cfg, functions=absolute_input(cfg.functions))
    check_out(cfg.out)  # the URI itself, before any path is made from it
    _private(cfg)  # refused before anything is written where the sandbox cannot hide --out
    if cfg.backend == "replay" and not storage.exists(cfg.replay_source):
        raise MultipltError(f"replay source {cfg.replay_source} does not exist")
    work = storage.join(cfg.out, "work", cfg.shard_name)
    _check_own_folder(cfg.out)
    _check_shard_layout(cfg)
    _check_same_run(cfg, work)
    if storage.exists(storage.join(work, DONE)):
        # the stages that read --functions compare its rows; validate (run where no parquet
        # library is) and write read only the shard's work folder
        if stage in ("all", "generate"):
            _check_done_rows(cfg, work)
        LOG.info("testgen: %s already done in %s", cfg.shard_name, cfg.out)
        _warn_if_empty(funnel.merge(cfg.out), cfg.out)
        return {"shard": cfg.shard_name, "skipped": True}
    if stage in ("all", "validate"):
        # a setup the validation refuses is refused before any row is read or sampled
        coverage_path(cfg.unsafe_no_sandbox)
    if stage == "validate":
        _check_sandbox(cfg)  # `all`: once the rows are read (their own errors first)
    summary = {"shard": cfg.shard_name}
    if stage in ("all", "generate"):
        summary.update(generate_stage(cfg, work, check_sandbox=stage == "all"))
    if stage in ("all", "validate"):
        summary.update(validate_stage(cfg, work))
    if stage in ("all", "write"):
        summary.update(write_stage(cfg, work))
    return summary


def _private(cfg: TestgenConfig) -> list[str]:
    """The local --out (every function's rows, completions, verdicts and outcomes), which the
    asserts must not see, as `execute` hides its folders (none with --unsafe-no-sandbox);
    MultipltError where the sandbox cannot hide it (`/`, a system folder, one holding the
    runtimes)."""
    if cfg.unsafe_no_sandbox:
        return []
    from multiplt.execution.executor import private_folders

    return private_folders([("--out", cfg.out)], "the run's functions, completions and verdicts")


def _check_sandbox(cfg: TestgenConfig) -> None:
    """The sandbox the asserts run in, and its python3, proven to work by the executor's preflight
    (MultipltError, exit 2: bwrap, setpriv or prlimit missing or unusable, naming it), before
    the model is loaded or anything is sampled or written (the validation would find it only
    after all the sampling); none with --unsafe-no-sandbox."""
    if cfg.unsafe_no_sandbox:
        return
    from multiplt import languages
    from multiplt.execution.preflight import check_ready

    check_ready([languages.get("py")])


def _check_replay(cfg: TestgenConfig, rows: list[dict]) -> None:
    from multiplt.errors import MultipltError
    from multiplt.generation.replay import load_replay

    have = load_replay(cfg.replay_source)
    short = [r["sha1"] for r in rows if len(have.get(r["sha1"], [])) < cfg.n]
    if short:
        raise MultipltError(f"replay source {cfg.replay_source} has fewer than {cfg.n} completions "
                            f"for {len(short)} function(s) (by sha1): {', '.join(short[:5])}")


# Settings that decide a shard's result: a rerun into the same --out must not change them.
# (Not URIs: the docker runtime's sandbox step sees them as local paths; the rows themselves
# are compared instead, by generate_stage and, on a finished shard, _check_done_rows.)
# validation: the version of the validation rules (config.VALIDATION): a shard of older rules
# is refused, not mixed with verdicts of the new ones
IDENTITY = ("backend", "model", "revision", "tokenizer", "n", "temperature", "top_p",
            "max_new_tokens", "min_coverage", "timeout", "seed", "validation", "python_hash_seeds")


SHARD_NAME = re.compile(r"shard-all|shard-\d{5,}-of-\d{5,}")


def _is_ours(out: str) -> bool:
    """Whether `out` holds a testgen run: a shard's `work/<shard>/rows.jsonl`, the first file
    every shard writes (tests/, excluded/ and funnel.json come only after), so it marks one also
    while other shards of the run are writing."""
    work = storage.join(out, "work")
    return any(SHARD_NAME.fullmatch(storage.basename(u)) and
               storage.exists(storage.join(u.rstrip("/"), ROWS))
               for u in storage.ls(work) if u.endswith("/"))


def _check_own_folder(out: str) -> None:
    """An --out that holds files must be a testgen output (`_is_ours`), and none of another
    command's (a translate output, found as translate finds its own, is named as such, also one a
    testgen run shares)."""
    from multiplt.translation.pipeline import translate_output_file

    other = translate_output_file(out)
    if other is not None:
        from multiplt.errors import MultipltError

        raise MultipltError(f"--out {out} holds another command's output (translate's: {other}), not "
                            "a testgen run; use an empty or new folder")
    refuse_foreign(out, lambda: _is_ours(out))


def _check_shard_layout(cfg: TestgenConfig) -> None:
    """One --out holds one sharding of a run (shard-all, or shards K of one N): tests/ of two
    layouts would hold every function twice, and the overall funnel would miss one."""
    other = [n for n in funnel.shard_names(cfg.out)
             if funnel.expected_shards(sorted({n, cfg.shard_name})) is None]  # None: two layouts
    if other:
        from multiplt.errors import MultipltError

        raise MultipltError(f"{cfg.out} holds shards of another layout ({', '.join(other[:3])}) than "
                            f"{cfg.shard_name}: every shard of a run uses the same --shard K/N (or none); "
                            f"use another --out")


def _check_same_run(cfg: TestgenConfig, work: str) -> None:
    uri = storage.join(work, "config.json")
    if not storage.exists(uri):
        return
    old, new = storage.read_json(uri), cfg.as_dict()
    diffs = differences(old, new, [k for k in IDENTITY if old.get(k) != new[k]])
    if diffs:
        from multiplt.errors import MultipltError

        raise MultipltError(f"{uri} records another run ({'; '.join(diffs)}); use another --out")


def _create(uri: str, data: bytes) -> bool:
    """Write `data` at `uri` only if no file is there (storage.create: of writers at once, one
    wins); whether this call wrote it."""
    return storage.create(uri, data, "runs of other settings or rows starting into this shard at "
                                     "the same moment may mix their results")


def _record_config(cfg: TestgenConfig, work: str) -> None:
    """The shard's config.json: created with this run's config where none is there (_create),
    else this run's settings checked against it (_check_same_run: another run of other settings
    that began beside this one, both having found none, may have recorded its own since) and
    its other fields rewritten as this run's."""
    uri = storage.join(work, "config.json")
    if not _create(uri, storage.encode_json(uri, cfg.as_dict(), indent=1)):
        _check_same_run(cfg, work)
        storage.write_json(uri, cfg.as_dict(), indent=1, if_changed=True)


def _need(work: str, name: str, stage: str) -> None:
    if not storage.exists(storage.join(work, name)):
        from multiplt.errors import MultipltError

        raise MultipltError(f"{storage.join(work, name)} is missing: run the {stage} stage of "
                            "this shard first (same flags)")


def _input_listing(functions: str) -> list[list] | None:
    """[URI, size, version tag] of every file the rows are read from (a listing: no file is
    read), or None when `functions` is one file (storage lists only a folder's files)."""
    files = inputs.parquet_files(functions)
    if files == [functions]:
        return None
    wanted = set(files)
    return [[f.uri, f.size, f.etag] for f in storage.listing(functions) if f.uri in wanted]


def _shard_rows(cfg: TestgenConfig, counts: collections.Counter) -> tuple[list[dict], str]:
    """The usable rows of the shard and the text of `rows.jsonl` (usable, then excluded rows)."""
    rows, excluded = _select(cfg, counts)
    return rows, "".join(json.dumps({"usable": i < len(rows), **r}, default=str) + "\n"
                         for i, r in enumerate(rows + excluded))


def _refuse_other_rows(cfg: TestgenConfig, work: str, text: str) -> None:
    rows_uri = storage.join(work, ROWS)
    if storage.exists(rows_uri) and storage.read_text(rows_uri) != text:
        from multiplt.errors import MultipltError

        raise MultipltError(f"{cfg.out} holds a run of {cfg.shard_name} over other rows than "
                            f"{cfg.functions} has now; use another --out")


def _check_done_rows(cfg: TestgenConfig, work: str) -> None:
    """A finished shard rerun over other rows is refused as an unfinished one is. Cheap when
    the input's files are those `input.json` lists (the same names, sizes and version tags);
    otherwise (moved, copied, rewritten, a single file) the shard's rows are read and compared
    with `rows.jsonl`; when they are the same, `input.json` is written anew, so that the next
    rerun over these files is cheap (a shard finished by a version without it, a moved input)."""
    listing = _input_listing(cfg.functions)
    uri = storage.join(work, INPUT)
    if listing is not None and storage.exists(uri) and storage.read_json(uri).get("files") == listing:
        return
    _refuse_other_rows(cfg, work, _shard_rows(cfg, collections.Counter())[1])
    if listing is not None:  # listed before the rows were read: a file rewritten since differs
        storage.write_json(uri, {"files": listing}, indent=1, if_changed=True)


def generate_stage(cfg: TestgenConfig, work: str, check_sandbox: bool = False) -> dict:
    """Rows of the shard (`rows.jsonl`: usable and excluded) and their completions.
    `check_sandbox`: the validation follows (stage `all`): prove the sandbox works once the rows
    are read, before anything is written or sampled."""
    counts: collections.Counter = collections.Counter()
    listing = _input_listing(cfg.functions)  # before the rows: a file rewritten meanwhile differs
    rows, text = _shard_rows(cfg, counts)
    if cfg.backend == "replay":
        _check_replay(cfg, rows)
    # nothing is written before the input is known to be good
    _refuse_other_rows(cfg, work, text)
    if check_sandbox:
        _check_sandbox(cfg)
    if rows and cfg.backend != "replay" and not storage.exists(storage.join(work, "config.json")):
        # the first run of the shard: its files record the run's model (_check_same_run), so one
        # that cannot load (a mistyped --model) must not write them, or they would refuse the
        # corrected rerun. Later runs (same model) may need no sampling, hence no model; nor
        # does a shard without usable rows (nothing to sample)
        check_backend_source(cfg.backend, cfg.model, cfg.revision, cfg.tokenizer)
    # rows.jsonl and config.json are each created only where none is there (a conditional
    # create): of runs that began at once, each having found neither, one writes them and the
    # other, of other rows or settings, is refused here, before it samples anything
    if not _create(storage.join(work, ROWS), text.encode("utf-8")):
        _refuse_other_rows(cfg, work, text)
    if listing is not None:  # these files hold the rows of rows.jsonl
        storage.write_json(storage.join(work, INPUT), {"files": listing}, indent=1, if_changed=True)
    _record_config(cfg, work)
    if rows:
        _generate(cfg, rows, work)
    return {"functions": counts["input"], "usable": len(rows)}


def validate_stage(cfg: TestgenConfig, work: str) -> dict:
    """Parse and run the asserts in the sandbox; every row's outcome in `outcomes.jsonl`."""
    from multiplt.generation import folder

    _need(work, ROWS, "generate")
    records = storage.read_jsonl(storage.join(work, ROWS))
    rows = [{k: v for k, v in r.items() if k != "usable"} for r in records if r["usable"]]
    excluded = [{k: v for k, v in r.items() if k != "usable"} for r in records if not r["usable"]]
    completions = storage.join(work, "completions")
    checks, assert_counts = {}, collections.Counter()
    for row in rows:
        problem = folder.read_problem(completions, row["sha1"])
        if problem is None or len(problem["completions"]) < cfg.n:
            from multiplt.errors import MultipltError

            raise MultipltError(f"{completions} lacks completions for {row['sha1']}: run the "
                                "generate stage of this shard first (same flags)")
        parsed = asserts.parse([prompt.completion_text(row["entrypoint"], c)
                                for c in problem["completions"][:cfg.n]], row["entrypoint"])
        assert_counts.update(parsed.counts)
        if parsed.asserts:
            checks[row["sha1"]] = Check(row["sha1"], outcome.prefix(row["context"], row["content"]),
                                        row["entrypoint"], parsed.asserts)
    from multiplt.execution.executor import default_workers
    from multiplt.testgen.execute import run_all

    run_summary = run_all(list(checks.values()), storage.join(work, "checks"),
                          workers=cfg.workers or default_workers(),
                          timeout=cfg.timeout, unsafe_no_sandbox=cfg.unsafe_no_sandbox,
                          private=_private(cfg))
    provenance = {"model": cfg.model, "revision": cfg.revision, "backend": cfg.backend,
                  "temperature": cfg.temperature, "top_p": cfg.top_p,
                  "max_new_tokens": cfg.max_new_tokens, "n": cfg.n, "seed": cfg.seed}
    kept, statuses, typed = [], collections.Counter(), collections.Counter()
    for row in rows:
        check = checks.get(row["sha1"])
        if check:
            statuses.update(check.statuses)
        result = outcome.decide(row, check, cfg.min_coverage)
        if result["reason"] is None:
            typed["typed" if result["content_with_types"] else "untyped"] += 1
            kept.append({**row, **{k: v for k, v in result.items() if k not in ("reason", "detail")},
                         **provenance})
        else:
            excluded.append({**row, **result})
    shard = funnel.shard_funnel(len(records), [e["reason"] for e in excluded])
    from multiplt import provenance as made_by

    # the code that ran the asserts: this stage may run in another image (the sandbox's) than
    # generate and write, whose provenance config.json records; merge lists every shard's
    shard.update(asserts=dict(assert_counts), verdicts=dict(statuses), types=dict(typed),
                  execution=run_summary, provenance=made_by.describe(made_by.TESTGEN))
    # the funnel first, the outcomes last: outcomes.jsonl marks a finished validation, so a run
    # killed between the two validates again instead of writing a shard without its funnel
    storage.write_json(storage.join(work, "funnel.json"), shard, indent=1)
    storage.write_text(storage.join(work, OUTCOMES), "".join(
        json.dumps({"kept": i < len(kept), **r}, default=str) + "\n"
        for i, r in enumerate(kept + excluded)))
    LOG.info("testgen funnel: %s", ", ".join(f"{s['name']} {s['in']}->{s['out']}"
                                             for s in shard["steps"]))
    LOG.info("testgen asserts: %s", ", ".join(f"{k}={v}" for k, v in assert_counts.most_common()))
    return {"kept": len(kept), "excluded": len(excluded)}


def write_stage(cfg: TestgenConfig, work: str) -> dict:
    """OUT/tests/ and OUT/excluded/ parquet of the shard, its config, its marker, the funnel."""
    _need(work, OUTCOMES, "validate")
    _need(work, "funnel.json", "validate")
    # the shard's rows are still --functions' (the one check of the input before _DONE): the
    # DAG runs write after a generate that failed, which may have refused rows changed since
    _check_done_rows(cfg, work)
    records = storage.read_jsonl(storage.join(work, OUTCOMES))
    kept = [{k: v for k, v in r.items() if k != "kept"} for r in records if r["kept"]]
    excluded = [{k: v for k, v in r.items() if k != "kept"} for r in records if not r["kept"]]
    name = f"{cfg.shard_name}.parquet"
    _record_config(cfg, work)  # checked again before the shard's parquet, and before its marker
    storage.write_parquet(storage.join(cfg.out, "tests", name), _frame(kept))
    storage.write_parquet(storage.join(cfg.out, "excluded", name), _frame(excluded))
    _check_same_run(cfg, work)
    storage.write_text(storage.join(work, DONE), json.dumps({"shard": cfg.shard_name}))
    _warn_if_empty(funnel.merge(cfg.out), cfg.out)
    return {"kept": len(kept), "excluded": len(excluded)}


def _warn_if_empty(totals: dict | None, out: str) -> None:
    """One WARNING line when the run (every shard, `OUT/funnel.json`: None while shards are
    missing) kept no function, naming the steps that dropped them (most first) and, where
    functions had no assert, what became of the completions' assert lines. Not an error: an
    empty result is a result (exit 0), and what follows testgen handles it."""
    if not totals or totals["steps"][-1]["out"]:
        return
    steps = totals["steps"]
    why = drop_reasons(steps)
    lines = {k: v for k, v in (totals.get("asserts") or {}).items() if k != "kept" and v}
    if lines and any(s["name"] == "no_asserts" and s["in"] > s["out"] for s in steps):
        why.append("assert lines of the completions: " + ", ".join(
            f"{k} {v}" for k, v in sorted(lines.items(), key=lambda kv: (-kv[1], kv[0]))))
    LOG.warning("testgen kept 0 of %d functions%s: %s holds no row; %s gives each function's "
                "reason", steps[0]["in"], f" ({'; '.join(why)})" if why else "",
                storage.join(out, "tests"), storage.join(out, "excluded"))


def _frame(rows: list[dict]):
    import polars as pl

    return pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()
