"""Language-independent analysis of a source problem: signature, types, normalized test cases.

For each problem: parse the prompt's signature and docstring, normalize the check function's
asserts (`asserts.normalize`), run the canonical solution on them (`probe`, in the sandbox) to
get concrete argument and expected values per assert, infer missing types from those values, then
apply the committed overrides. The result is what every language's translation starts from.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib.resources
import logging

import yaml

from multiplt import languages
from multiplt.benchmarks import asserts, probe
from multiplt.benchmarks.prompts import PromptError, Signature, parse_prompt
from multiplt.benchmarks.sources import Source, SourceProblem
from multiplt.errors import MultipltError
from multiplt.languages.base import Param, TestCase
from multiplt.languages.types import (UNKNOWN, PyType, TypeParseError, of_value, parse, refine,
                                      unify)
from multiplt.log import Funnel

LOG = logging.getLogger("multiplt.benchmarks")


@dataclasses.dataclass
class Analysis:
    problem: SourceProblem
    sig: Signature | None = None
    params: list[Param] = dataclasses.field(default_factory=list)
    returns: PyType = UNKNOWN
    sites: list[asserts.Site] = dataclasses.field(default_factory=list)
    cases: dict[int, list[TestCase]] = dataclasses.field(default_factory=dict)
    site_drops: dict[int, str] = dataclasses.field(default_factory=dict)
    error: str | None = None  # why the whole problem cannot be built
    overrides: list[str] = dataclasses.field(default_factory=list)

    @property
    def counted_sites(self) -> list[asserts.Site]:
        """The asserts that test something (`assert True` is reported but not counted)."""
        return [s for s in self.sites if s.mode != asserts.TRIVIAL]


@functools.lru_cache(maxsize=4)
def overrides_for(source_label: str) -> dict:
    if source_label != "humaneval":
        return {}
    text = importlib.resources.files("multiplt.benchmarks").joinpath(
        "data/humaneval_overrides.yaml").read_text()
    return parse_overrides(text, "humaneval_overrides.yaml")


def parse_overrides(text: str, where: str) -> dict:
    """The overrides of a YAML text (the file `where`), checked: every entry has a `reason`, and
    every key of a property's `templates` is a language code of the registry (a typo'd key would
    leave its language without the assert, silently). MultipltError naming the problem."""
    data = yaml.safe_load(text) or {}
    for name, entry in data.items():
        if not entry.get("reason"):
            raise MultipltError(f"{where}: entry {name} has no reason")
        templates = (entry.get("property") or {}).get("templates") or {}
        unknown = [str(key) for key in templates if key not in languages.LANGUAGES]
        if unknown:
            raise MultipltError(f"{where}: entry {name}: templates name unknown language code(s) "
                                f"{', '.join(map(repr, unknown))}; known: {', '.join(languages.LANGUAGES)}")
    return data


def _literal(text: str):
    return ast.literal_eval(text)


def _collect_cases(an: Analysis, row: dict) -> None:
    for site in an.sites:
        if site.mode in (asserts.TRIVIAL, asserts.UNSUPPORTED):
            an.site_drops[site.index] = site.reason
            continue
        failure = row.get("failures", {}).get(str(site.index))
        raw = row.get("cases", {}).get(str(site.index), [])
        if failure:
            an.site_drops[site.index] = failure
            continue
        if not raw:
            reason = "never reached when the canonical solution ran"
            if row.get("error"):
                reason += f" ({row['error']})"
            an.site_drops[site.index] = reason
            continue
        cases = []
        for args, expected, _result, tol in raw:
            try:
                case = TestCase(_literal(args), _literal(expected), _literal(tol))
                for v in (*case.args, case.expected):
                    of_value(v)
            except (ValueError, SyntaxError, TypeParseError) as exc:
                an.site_drops[site.index] = f"a value is not a plain literal ({str(exc)[:80]})"
                break
            cases.append(case)
        else:
            an.cases[site.index] = cases


def _infer_types(an: Analysis, keep_declared: bool = False) -> None:
    """Parameter and return types: the annotation, its gaps filled from the recorded values.
    With `keep_declared`, the current types (overrides applied) are the annotations."""
    sig = an.sig
    observed = [UNKNOWN] * len(sig.arg_names)
    returned = UNKNOWN
    for cases in an.cases.values():
        for case in cases:
            if len(case.args) != len(observed):
                continue
            observed = [unify(t, of_value(v)) for t, v in zip(observed, case.args)]
            returned = unify(returned, of_value(case.expected))
    declared = [p.type for p in an.params] if keep_declared else sig.annotations
    an.params = [Param(n, refine(a, o)) for n, a, o in zip(sig.arg_names, declared, observed)]
    an.returns = refine(an.returns if keep_declared else sig.returns, returned)


def _apply_property(an: Analysis, entry: dict, row: dict) -> None:
    """A property assert (`poly(xs, candidate(xs)) ~ 0`) with per-language templates: each call
    the check made to the candidate becomes one case, rendered through the template."""
    prop = entry["property"]
    sites = [s for s in an.sites if prop["assert"] in s.source]
    if len(sites) != 1:
        raise MultipltError(f"override for {an.problem.name}: property assert {prop['assert']!r} "
                            f"matches {len(sites)} asserts")
    templates = tuple(sorted(prop["templates"].items()))
    cases = [TestCase(_literal(args), _literal(result), None, templates)
             for args, result in row.get("calls", [])]
    if cases:
        an.cases[sites[0].index] = cases
        an.site_drops.pop(sites[0].index, None)


def _apply_overrides(an: Analysis, entry: dict) -> None:
    for arg, text in (entry.get("params") or {}).items():
        for i, p in enumerate(an.params):
            if p.name == arg:
                an.params[i] = Param(arg, parse(text))
                break
        else:
            raise MultipltError(f"override for {an.problem.name}: no parameter {arg!r}")
    if entry.get("returns"):
        an.returns = parse(entry["returns"])
    if entry.get("docstring"):
        an.sig.docstring = entry["docstring"]
    for pattern in entry.get("drop_asserts") or []:
        hits = [s for s in an.sites if pattern in s.source and s.index not in an.site_drops]
        if not hits:
            raise MultipltError(f"override for {an.problem.name}: no assert matches {pattern!r}")
        for site in hits:
            an.site_drops[site.index] = f"override: {entry['reason']}"
            an.cases.pop(site.index, None)
    if entry.get("drop"):
        an.error = f"override: {entry['reason']}"
    an.overrides.append(entry["reason"])


def analyze(source: Source, timeout: float = 20.0, unsafe_no_sandbox: bool = False) -> list[Analysis]:
    """Analyze every problem of `source`: its canonical solution runs on its tests in the
    execution sandbox, one program per problem (probe.py); `unsafe_no_sandbox` runs them as plain
    child processes instead, as `execute --unsafe-no-sandbox` does (trusted sources only)."""
    overrides = overrides_for(source.label)  # a bad overrides file fails before any probe runs
    analyses, to_probe = [], []
    for problem in source.problems:
        an = Analysis(problem)
        analyses.append(an)
        try:
            an.sig = parse_prompt(problem.prompt, problem.entry_point)
            rewritten, an.sites = asserts.normalize(problem.test, problem.entry_point)
        except (PromptError, asserts.CheckError) as exc:
            an.error = str(exc)
            continue
        if not problem.canonical_solution:
            an.error = "no canonical_solution to run the tests against (types and values unknown)"
            continue
        code = problem.prompt + problem.canonical_solution + "\n\n" + rewritten + "\n"
        to_probe.append({"key": problem.name, "code": code, "entry_point": problem.entry_point})
    LOG.info("running %d canonical solutions on their tests", len(to_probe))
    rows = probe.run(to_probe, timeout, unsafe_no_sandbox=unsafe_no_sandbox)
    for an in analyses:
        if an.error:
            continue
        _collect_cases(an, rows.get(an.problem.name, {}))
        if overrides.get(an.problem.name, {}).get("property"):
            _apply_property(an, overrides[an.problem.name], rows.get(an.problem.name, {}))
        _infer_types(an)
        if an.problem.name in overrides:
            _apply_overrides(an, overrides[an.problem.name])
            _infer_types(an, keep_declared=True)
    funnel = Funnel("benchmark asserts")
    for an in analyses:
        for site in an.counted_sites:
            if site.index in an.cases:
                funnel.keep()
            else:
                reason = an.site_drops.get(site.index, an.error or "problem not analyzable")
                funnel.drop(reason.split(" (")[0].split(":")[0][:50])
    funnel.log(LOG)
    # against the whole source: a selection (--problems, --limit) leaving an overridden problem
    # out is no mistake of the overrides file
    names = source.selected_from or {an.problem.name for an in analyses}
    unused = set(overrides) - names
    if unused and len(names) > 100:
        LOG.warning("overrides name problems not in the source: %s", ", ".join(sorted(unused)))
    return analyses
