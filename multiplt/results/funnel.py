"""A stage's funnel as chart data: steps with rows in and out, and the reasons rows were dropped.

Corpus and testgen write `funnel.json` as `{"steps": [{"name", "in", "out", ("reason")}, ...]}`;
translate writes one entry per language with cumulative counts (`functions_in`, `prompts_built`,
`translations_sampled`, `passed`, `after_todo`, `after_exact_dedup`, `after_rouge_l`), which
`translation_steps` turns into the same steps. Reasons come from the `excluded/` parquet files
(`reason`, and `stage` for translate) and join the step they belong to.
"""

from __future__ import annotations

import collections
import re

from multiplt.errors import MultipltError

#: translate's steps: (name, excluded `stage` of its drops, count in, count out)
TRANSLATION_STEPS = (("build", "build", "functions_in", "prompts_built"),
                     ("validate", "validate", "translations_sampled", "passed"),
                     ("clean", "clean", "passed", "after_todo"),
                     ("dedup", "dedup", "after_todo", "after_rouge_l"))
_NUMBER = re.compile(r"(?<![A-Za-z_])[-+]?\d+(\.\d+)?")


def _count(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MultipltError(f"{where} is {value!r}, not a row count")
    return value


def steps_of(raw, uri: str) -> list[dict]:
    """The `steps` of a corpus/testgen funnel.json, checked: each with name, in and out."""
    if not isinstance(raw, dict) or not isinstance(raw.get("steps"), list):
        raise MultipltError(f"{uri} has no `steps` list")
    steps = []
    for i, step in enumerate(raw["steps"]):
        if not isinstance(step, dict) or not isinstance(step.get("name"), str):
            raise MultipltError(f"{uri}: step {i} has no name")
        where = f"{uri}: step {step['name']!r}"
        steps.append({"name": step["name"], "in": _count(step.get("in"), f"{where} `in`"),
                      "out": _count(step.get("out"), f"{where} `out`"),
                      "match": {step["name"], *([step["reason"]] if step.get("reason") else [])}})
    return steps


def translation_steps(lang_funnel: dict) -> list[dict]:
    """Steps of one language of translate's funnel.json."""
    steps = []
    for name, stage, key_in, key_out in TRANSLATION_STEPS:
        steps.append({"name": name, "in": _count(lang_funnel.get(key_in), f"translate funnel `{key_in}`"),
                      "out": _count(lang_funnel.get(key_out), f"translate funnel `{key_out}`"),
                      "match": {stage}})
    return steps


def reason_label(reason: str) -> str:
    """Reasons that differ only in numbers (a ROUGE-L score, an exit code) count as one."""
    return _NUMBER.sub("#", str(reason)).strip()


def reason_counts(files: list[list[tuple[str | None, str]]]) -> collections.Counter:
    """{(stage, reason label): rows} over the (stage, reason) rows of every excluded file."""
    counts: collections.Counter = collections.Counter()
    for rows in files:
        for stage, reason in rows:
            if reason is not None:
                counts[(stage, reason_label(reason))] += 1
    return counts


def attach_reasons(steps: list[dict], counts: collections.Counter) -> list[dict]:
    """Each step with `dropped` (in - out) and `reasons`: [(reason, rows)], most first (ties by
    reason). A
    reason joins the step whose name (or declared reason) equals its stage or itself; reasons
    that match no step are listed on a last step named `other`."""
    out = [{"name": s["name"], "in": s["in"], "out": s["out"], "dropped": s["in"] - s["out"],
            "reasons": []} for s in steps]
    unmatched = []
    for (stage, reason), rows in sorted(counts.items(), key=lambda item: (-item[1], item[0][1])):
        head = reason.split(":", 1)[0].strip()
        target = next((i for i, s in enumerate(steps)
                       if stage in s["match"] or reason in s["match"] or head in s["match"]), None)
        if target is None:
            unmatched.append((reason, rows))
        else:
            out[target]["reasons"].append((reason, rows))
    if unmatched:
        out.append({"name": "other", "in": None, "out": None, "dropped": sum(n for _, n in unmatched),
                    "reasons": unmatched})
    return out
