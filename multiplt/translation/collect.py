"""Validated samples -> dataset rows, per function (MultiPL-T section 2e-2f).

For each problem, in sample order, over its first --n samples (a completion folder sampled
with a larger --n holds more; they are not used, so a rerun with a smaller --n equals a fresh
run): keep the programs that passed (status OK, exit code 0, and the problem's end-of-tests
nonce printed on a line of its own on stdout: `problems.build_problem` seals the tests so that
only a run in which every test ran and passed prints it) and whose translation does not
redefine what the tests rely on (the language's `tampers_with_tests`), clean each
(`clean.clean_program`), drop those containing TODO, drop exact duplicates, then near-duplicates
(greedy ROUGE-L, `dedup`). Every dropped sample becomes an `excluded` row with its reason.
Work is saved in parts of CHUNK functions under the shard's work folder, so a killed collection
resumes with the first unfinished part; its progress (`multiplt.log.progress`) moves with each
function collected (a reused part at once).
"""

from __future__ import annotations

import logging

from multiplt import languages, storage
from multiplt.errors import MultipltError
from multiplt.execution import files
from multiplt.generation import folder
from multiplt.languages.base import OK
from multiplt.log import progress
from multiplt.translation import dedup as dedup_mod
from multiplt.translation.clean import CleanError, clean_program, cut_at_tests, has_todo

LOG = logging.getLogger("multiplt.translation")
CHUNK = 200
COUNTS = ("translations_sampled", "passed", "after_todo", "after_exact_dedup", "after_rouge_l")


def passed(result: dict, nonce: str) -> bool:
    """Status OK, exit code 0, and `nonce` (the problem's `tests_nonce`) alone on a line of the
    run's stdout: a program that exits 0 before, or instead of, running every test never prints
    it (nor does one whose tests failed unseen, e.g. Racket's with stderr hidden)."""
    return ok_exit(result) and nonce in (result.get("stdout") or "").splitlines()


def ok_exit(result: dict) -> bool:
    return result.get("status") == OK and result.get("exit_code") == 0


#: an excluded sample's reason: status OK and exit 0, but its tests did not all run and pass
NO_NONCE = "failed: tests did not all run and pass (status OK, exit 0, no end-of-tests nonce on stdout)"
#: an excluded sample's reason (then `: ` and the construct found; the funnel counts it without):
#: it passed, but its translation reaches what the tests rely on (Language.tampers_with_tests)
TAMPERS = "redefines the test harness"


def tampering(result: dict, problem: dict, lang: str) -> str | None:
    """What in the translation of a run's program (the completion between the problem's prompt
    and tests; for a program not built that way, up to where its tests start, as cleaning cuts
    it) its language refuses as a redefinition of the test harness
    (`Language.tampers_with_tests`), or None."""
    program, prompt, tests = result.get("program") or "", problem["prompt"], problem.get("tests")
    if not program.startswith(prompt):
        prompt = ""
    if tests and program.endswith(tests) and len(program) >= len(prompt) + len(tests):
        completion = program[len(prompt):len(program) - len(tests)]
    else:
        completion = cut_at_tests(program[len(prompt):], lang)
    return languages.get(lang).tampers_with_tests(prompt, completion)


def collect_function(problem: dict, doc: dict, lang: str, rouge: dedup_mod.RougeDedup,
                     run: dict, n: int) -> tuple[list[dict], list[dict], dict]:
    """(kept rows, excluded rows, counts) for one problem's results document, from its first
    `n` samples (--n): a folder sampled with a larger --n holds more, which are not used."""
    sha1 = problem["sha1"]
    results = doc.get("results") or []
    have = len(doc.get("completions") or [])
    if have < n:
        raise MultipltError(f"{sha1}: only {have} of {n} samples (--n) were generated; run the "
                            "sampling first (translate --stage sample or all, same --n)")
    if len(results) < n:
        raise MultipltError(f"{sha1}: only {len(results)} of {n} samples were executed; run the "
                            "execution first (multiplt execute, or translate --stage all)")
    nonce = problem.get("tests_nonce")
    if not nonce:
        raise MultipltError(f"{sha1}: the problem has no tests_nonce (built by an older multiplt, "
                            "whose runs cannot show that the tests ran); use another --out")
    base = {"sha1": sha1, "id": _text(problem.get("id")), "entrypoint": problem["entrypoint"]}
    excluded, cleaned = [], []
    counts = dict.fromkeys(COUNTS, 0)
    counts["translations_sampled"] = n
    for i, result in enumerate(results[:n]):
        if not passed(result, nonce):
            reason = NO_NONCE if ok_exit(result) else \
                f"failed: {result.get('status')} (exit {result.get('exit_code')})"
            excluded.append({**base, "sample": i, "stage": "validate", "reason": reason})
            continue
        found = tampering(result, problem, lang)
        if found:
            excluded.append({**base, "sample": i, "stage": "validate", "reason": f"{TAMPERS}: {found}"})
            continue
        counts["passed"] += 1
        try:
            text = clean_program(result["program"], problem["prompt"], problem["clean_prompt"], lang)
        except CleanError as exc:
            excluded.append({**base, "sample": i, "stage": "clean", "reason": str(exc)})
            continue
        if has_todo(text):
            excluded.append({**base, "sample": i, "stage": "clean", "reason": "contains TODO"})
            continue
        cleaned.append((i, text))
    counts["after_todo"] = len(cleaned)
    texts = dict(cleaned)
    unique = []
    for verdict in dedup_mod.exact(cleaned):
        if verdict.kept:
            unique.append((verdict.key, texts[verdict.key]))
        else:
            excluded.append({**base, "sample": verdict.key, "stage": "dedup", "reason": verdict.reason,
                             "duplicate_of": verdict.duplicate_of})
    counts["after_exact_dedup"] = len(unique)
    kept = []
    pass_rate = round(counts["passed"] / n, 4) if n else 0.0
    for verdict in rouge.greedy(unique, lang):
        if verdict.kept:
            kept.append({"content": texts[verdict.key], **base, "sample": verdict.key,
                         "pass_rate": pass_rate, "model": run.get("model"),
                         "revision": run.get("revision"),
                         "translated_tests": problem.get("translated_tests"),
                         "source_tests": problem.get("source_tests")})
        else:
            excluded.append({**base, "sample": verdict.key, "stage": "dedup",
                             "reason": f"{verdict.reason} {verdict.score} > {rouge.threshold}",
                             "duplicate_of": verdict.duplicate_of})
    counts["after_rouge_l"] = len(kept)
    return kept, excluded, counts


def _text(value) -> str | None:
    return None if value is None else str(value)


def _part_uri(work: str, index: int) -> str:
    return storage.join(work, "collect", f"part-{index:05d}.json.gz")


def collect(problems: list[dict], completions: str, work: str, lang: str, threshold: float,
            run: dict, n: int) -> tuple[list[dict], list[dict], dict]:
    """All problems of a shard, resumably: (kept rows, excluded rows, summed counts). A part
    made from another number of samples per function (a run resumed with a larger --n) is
    collected again."""
    rouge = dedup_mod.RougeDedup(threshold)
    problems = sorted(problems, key=lambda p: p["sha1"])
    kept, excluded = [], []
    counts = dict.fromkeys(COUNTS, 0)
    chunks = [problems[i:i + CHUNK] for i in range(0, len(problems), CHUNK)]
    bar = progress(total=len(problems), desc=f"collect {lang}", unit="function")
    reused = 0
    for index, chunk in enumerate(chunks):
        names = [p["sha1"] for p in chunk]
        uri = _part_uri(work, index)
        part = storage.read_json(uri) if storage.exists(uri) else None
        if part is not None and part.get("n") != n:
            part = None
        if part is not None and (part.get("names") != names or part.get("threshold") != threshold
                                 or part.get("run") != run):
            raise MultipltError(f"{uri} was collected from other problems or settings (threshold "
                                f"{part.get('threshold')}, model {part.get('run')}); use another --out")
        if part is None:
            part = {"names": names, "threshold": threshold, "run": run, "n": n, "kept": [], "excluded": [],
                    "counts": dict.fromkeys(COUNTS, 0)}
            for problem in chunk:
                doc = storage.read_json(files.results_uri(completions, problem["sha1"])) \
                    if storage.exists(files.results_uri(completions, problem["sha1"])) else None
                if doc is None and not storage.exists(folder.problem_uri(completions, problem["sha1"])):
                    raise MultipltError(f"{problem['sha1']}: no completions file in {completions}; run "
                                        "the sampling first (translate --stage sample or all, same --n)")
                if doc is None:
                    raise MultipltError(f"{problem['sha1']}: no results file in {completions}; run "
                                        "the execution first (multiplt execute, or translate --stage all)")
                k, e, c = collect_function(problem, doc, lang, rouge, run, n)
                part["kept"] += k
                part["excluded"] += e
                for key in COUNTS:
                    part["counts"][key] += c[key]
                bar.update(1)
            storage.write_json(uri, part)
        else:
            reused += len(chunk)
            bar.update(len(chunk))
        kept += part["kept"]
        excluded += part["excluded"]
        for key in COUNTS:
            counts[key] += part["counts"][key]
    bar.close()
    if reused:
        LOG.info("collect %s: %d functions reused from an earlier run", lang, reused)
    return kept, excluded, counts
