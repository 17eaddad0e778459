"""Cleaning a validated translation into a training document, as MultiPL-T did (section 2f).

A program is prompt + completion + tests. The document keeps the prompt without the canonical
Python comment block (the problem's `clean_prompt`) and the completion, cut where the test suite
starts (each language's `test_marker`), with empty comment lines removed. `strip_comments`
gives the text that near-duplicate detection compares (dedup.py). `lang` is a code or name of
the registry; what each language needs is its Language's `test_marker`, `empty_comment` and
`comment_patterns`.
"""

from __future__ import annotations

import re

from multiplt import languages


class CleanError(ValueError):
    """The program does not start with the problem's prompt (it is not this problem's)."""


def cut_at_tests(text: str, lang: str) -> str:
    marker = languages.get(lang).test_marker
    at = text.find(marker)
    return text if at < 0 else text[:at]


def drop_empty_comment_lines(text: str, lang: str) -> str:
    pattern = re.compile(rf"^\s*(?:{languages.get(lang).empty_comment})\s*$")
    return "\n".join(line for line in text.split("\n") if not pattern.match(line))


def clean_program(program: str, prompt: str, clean_prompt: str, lang: str) -> str:
    """The training document for one passing program of a problem."""
    if not program.startswith(prompt):
        raise CleanError("the program does not start with the problem's prompt")
    text = clean_prompt + program[len(prompt):]  # the canonical Python comment block goes
    text = cut_at_tests(text, lang)
    return drop_empty_comment_lines(text, lang).rstrip() + "\n"


def strip_comments(text: str, lang: str) -> str:
    """The code without comments (and Julia docstrings) and without blank lines."""
    for pattern in languages.get(lang).comment_patterns:
        text = re.sub(pattern, "", text, flags=re.DOTALL)
    return "\n".join(line.rstrip() for line in text.split("\n") if line.strip())


def has_todo(text: str) -> bool:
    return "TODO" in text
