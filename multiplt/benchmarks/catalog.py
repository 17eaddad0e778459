"""`multiplt benchmark ls`: the known sources and how many problems each language gets.

Counts are computed, not stored: the source is analyzed once (its canonical solutions run on
their tests) and translated into every language without writing anything.
"""

from __future__ import annotations

from multiplt.benchmarks import analyze, build, sources
from multiplt.languages import get, names


def counts(source_names: list[str] | None = None) -> list[dict]:
    table = []
    for label in source_names or list(sources.BUILTIN):
        src = sources.load(label)
        analyses = analyze.analyze(src)
        per_lang = {}
        for code in names():
            rows, _report = build.build_rows(src, get(code), analyses, show_progress=False)
            per_lang[code] = len(rows)
        table.append({"source": label, "problems": len(src.problems), "languages": per_lang,
                      "description": sources.BUILTIN.get(label, label)})
    return table
