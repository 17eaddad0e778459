"""Every per-language table the tests keep has a row for each language of the registry, so a
language added to multiplt/languages/ without its rows fails here, fast, instead of being
skipped in silence by the (mostly slow) tests that read the tables.

Four kinds of table:
- "every language": a row per language of the registry (`languages.names()`), Python included;
- "every target": a row per target language (`languages.targets()`: all but Python);
- "every installed runtime": a row per registered language whose runtime is installed here (a
  test that runs programs can only check those; Julia, not packaged by Debian, has none here);
  a row may name only a registered language;
- "every forking language": a row per language whose module declares a pre-loaded runtime.

Nothing here runs a program: importing the tables renders text at most.
"""

from __future__ import annotations

import shutil

import pytest

from multiplt import languages
from multiplt.languages.base import STATUSES, Language
from tests.fixtures import solutions
from tests.fixtures import translate as translate_fixture
from tests.integration import test_benchmark_build as benchmark_build
from tests.integration import test_zero_broken as zero_broken
from tests.unit.execution import forkserver_programs, hostile_programs, status_programs
from tests.unit.languages import test_default_timeouts as default_timeouts
from tests.unit.languages import test_harness_shapes as harness_shapes
from tests.unit.languages import test_runtime_values as runtime_values
from tests.unit.languages import test_values as values
from tests.unit.translation import test_problems as problems

EVERY = "every language"
TARGETS = "every target"
INSTALLED = "every installed runtime"
FORKING = "every forking language"


def _solution_folders() -> set[str]:
    return {p.name for p in solutions.ROOT.iterdir() if p.is_dir() and not p.name.startswith("__")}


# (where the table is, what it must cover, its keys); the keys are read when the test runs
TABLES = [
    ("tests/unit/execution/status_programs.py PROGRAMS", EVERY, lambda: status_programs.PROGRAMS),
    *[(f"tests/unit/languages/test_values.py CASES[{case}]", EVERY, lambda e=expected: e)
      for case, _value, _type, expected in values.CASES],
    ("tests/unit/languages/test_default_timeouts.py TIMEOUTS", EVERY, lambda: default_timeouts.TIMEOUTS),
    ("tests/unit/languages/test_harness_shapes.py PROMPTS", EVERY, lambda: harness_shapes.PROMPTS),
    ("tests/unit/languages/test_harness_shapes.py TESTS", EVERY, lambda: harness_shapes.TESTS),
    ("tests/integration/test_benchmark_build.py TARGETS", EVERY, lambda: benchmark_build.TARGETS),
    ("tests/integration/test_benchmark_build.py ENDINGS", EVERY, lambda: benchmark_build.ENDINGS),
    ("tests/fixtures/solutions/<code>/ folders", TARGETS, _solution_folders),
    ("tests/fixtures/translate/__init__.py COMPLETIONS", TARGETS, lambda: translate_fixture.COMPLETIONS),
    ("tests/unit/translation/test_problems.py SIGNATURES", TARGETS, lambda: problems.SIGNATURES),
    ("tests/unit/translation/test_problems.py FIRST_TEST", TARGETS, lambda: problems.FIRST_TEST),
    ("tests/unit/languages/test_runtime_values.py PRINT", INSTALLED, lambda: runtime_values.PRINT),
    ("tests/unit/languages/test_runtime_values.py SPECIAL", INSTALLED, lambda: runtime_values.SPECIAL),
    ("tests/integration/test_zero_broken.py BREAKERS", INSTALLED, lambda: zero_broken.BREAKERS),
    ("tests/unit/execution/hostile_programs.py PROGRAMS", INSTALLED, lambda: hostile_programs.PROGRAMS),
    ("tests/unit/execution/hostile_programs.py INSPECT", INSTALLED, lambda: hostile_programs.INSPECT),
    ("tests/unit/execution/hostile_programs.py COMMENT", INSTALLED, lambda: hostile_programs.COMMENT),
    ("tests/unit/execution/hostile_programs.py READ_OWN_PROC", INSTALLED,
     lambda: hostile_programs.READ_OWN_PROC),
    ("tests/unit/execution/hostile_programs.py SHELL_CALL", INSTALLED,
     lambda: hostile_programs.SHELL_CALL),
    ("tests/unit/execution/forkserver_programs.py CORRUPT", FORKING, lambda: forkserver_programs.CORRUPT),
    ("tests/unit/execution/forkserver_programs.py SHOW", FORKING, lambda: forkserver_programs.SHOW),
]


def _installed(code: str) -> bool:
    return all(shutil.which(b) for b in languages.get(code).binaries)


def _forking(code: str) -> bool:
    return type(languages.get(code)).fork_server is not Language.fork_server


def coverage(kind: str) -> tuple[set[str], set[str]]:
    """(the codes a table of this kind must have, the codes it may have)."""
    names = set(languages.names())
    if kind == EVERY:
        return names, names
    if kind == TARGETS:
        return set(languages.targets()), set(languages.targets())
    if kind == INSTALLED:
        return {code for code in names if _installed(code)}, names
    if kind == FORKING:
        forking = {code for code in names if _forking(code)}
        return forking, forking
    raise ValueError(kind)


def mismatch(where: str, kind: str, keys) -> str | None:
    """What is wrong with a table's keys, or None."""
    required, allowed = coverage(kind)
    missing, extra = sorted(required - set(keys)), sorted(set(keys) - allowed)
    if not missing and not extra:
        return None
    said = [f"no row for {', '.join(missing)}"] if missing else []
    said += [f"a row for {', '.join(extra)}, which is not one of {kind}"] if extra else []
    return f"{where} ({kind}): {'; '.join(said)}"


@pytest.mark.parametrize("where, kind, keys", TABLES, ids=[t[0] for t in TABLES])
def test_table_has_a_row_for_each_language(where, kind, keys):
    assert mismatch(where, kind, keys()) is None


@pytest.mark.parametrize("where, kind, keys", TABLES, ids=[t[0] for t in TABLES])
def test_a_missing_or_unknown_row_is_reported(where, kind, keys):
    """The check itself can fail: each table less one required row, or with a row for a
    language the registry lacks, is reported with the code."""
    rows = set(keys())
    required, _ = coverage(kind)
    assert required, f"{where}: no language is required ({kind})"
    for code in sorted(required):
        assert code in mismatch(where, kind, rows - {code})
    assert "perlx" in mismatch(where, kind, rows | {"perlx"})


def test_status_programs_cover_every_status():
    for code, by_status in status_programs.PROGRAMS.items():
        assert set(by_status) == set(STATUSES), code
        assert all(by_status.values()), f"{code}: a status without a program"


def test_derived_language_lists_follow_the_registry():
    """The lists the tests derive instead of keeping by hand."""
    assert solutions.LANGS == tuple(languages.targets())
    assert solutions.RUNNABLE == tuple(c for c in languages.targets() if _installed(c))
    assert set(translate_fixture.TYPED_ONLY) == {c for c in languages.targets()
                                                 if languages.get(c).strict_types}


def test_the_adding_a_language_checklist_names_every_table():
    """docs/languages.md's checklist names each table of TABLES, and its file: a table added
    here and not there would fail a contributor who followed the page."""
    import pathlib
    import re

    doc = (pathlib.Path(__file__).parents[3] / "docs" / "languages.md").read_text()
    section = doc.split("**Fixtures and test tables**", 1)[1].split("\n- **", 1)[0]
    text = " ".join(section.split())
    for where, _, _ in TABLES:
        path, _, name = where.partition(" ")
        table = re.sub(r"\[.*\]$", "", name)
        assert f"`{path}`" in text, where
        if table != "folders":
            assert f"`{table}`" in text, where
