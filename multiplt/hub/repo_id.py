"""Hub repository ids: exactly `OWNER/NAME`, as the Hub accepts them."""

from __future__ import annotations

import re

from multiplt.errors import MultipltError

_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
REPO_ID_RE = re.compile(rf"^({_PART})/({_PART})$")
MAX_NAME = 96


def parse_repo_id(text: str) -> tuple[str, str]:
    """(owner, name) of `OWNER/NAME`; anything else (a URL, one part, three parts, `--` or `..`,
    characters the Hub rejects) is a MultipltError naming the expected form."""
    value = (text or "").strip()
    match = REPO_ID_RE.match(value)
    if not match or "--" in value or ".." in value or len(match[2]) > MAX_NAME:
        raise MultipltError(
            f"bad --repo {text!r}: expected OWNER/NAME (letters, digits, '.', '_', '-'; no URL, "
            f"no '--' or '..', name at most {MAX_NAME} characters), e.g. myorg/MultiPL-T")
    return match[1], match[2]


def check_repo_id(text: str) -> str:
    owner, name = parse_repo_id(text)
    return f"{owner}/{name}"
