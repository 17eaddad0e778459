"""Run folder names: `<benchmark>-<lang>-<model>-<revision>-<temperature>`, like MultiPL-E's
`{dataset}-{lang}-{model}-{temperature}-reworded` but with the revision, and safe as one path
segment (a `/` in a Hub name or URI becomes `_`)."""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9._+=@,]+")


def safe_part(text) -> str:
    """One path segment: runs of characters other than letters, digits and ._+=@, become `_`;
    `-` is reserved as the separator of the name's parts."""
    part = _UNSAFE.sub("_", str(text)).strip("_.")
    return part or "none"


def run_folder_name(benchmark: str, lang: str, model: str, revision: str | None,
                    temperature: float) -> str:
    model = re.sub(r"^[a-z0-9]+://", "", str(model)).rstrip("/")
    return "-".join([safe_part(benchmark), safe_part(lang), safe_part(model),
                     safe_part(revision or "main"), safe_part(f"{float(temperature):g}")])
