"""Names the Hub checks only when a push reaches it, checked here before anything is read or
written: repository ids (exactly `OWNER/NAME`), branch names (`--revision`) and license ids."""

from __future__ import annotations

import re

from multiplt.errors import MultipltError

_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
REPO_ID_RE = re.compile(rf"^({_PART})/({_PART})$")
MAX_NAME = 96


def parse_repo_id(text: str) -> tuple[str, str]:
    """(owner, name) of `OWNER/NAME`; anything else (a URL, one part, three parts, `--` or `..`,
    a trailing `.git`, a part over 96 characters, characters the Hub rejects: whatever
    huggingface_hub's own validate_repo_id refuses too) is a MultipltError naming the expected
    form."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    value = (text or "").strip()
    match = REPO_ID_RE.match(value)
    ok = bool(match) and "--" not in value and ".." not in value and not value.endswith(".git") \
        and len(match[1]) <= MAX_NAME and len(match[2]) <= MAX_NAME
    if ok:
        try:
            validate_repo_id(value)  # the client's own rules, which a push applies only at the end
        except HFValidationError:
            ok = False
    if not ok:
        raise MultipltError(
            f"bad --repo {text!r}: expected OWNER/NAME (letters, digits, '.', '_', '-'; no URL, "
            f"no '--' or '..', not ending in '.git', each part at most {MAX_NAME} characters), "
            f"e.g. myorg/MultiPL-T")
    return match[1], match[2]


def check_repo_id(text: str) -> str:
    owner, name = parse_repo_id(text)
    return f"{owner}/{name}"


# git check-ref-format's rules for a branch name, which the Hub applies to a revision to commit to.
# Parts are checked in "/" + name + "/", so that a first or last part is a part too.
_REF_BAD_PARTS = (("..", "'..'"), ("@{", "'@{'"), ("//", "an empty part ('//')"),
                  ("/.", "a part starting with '.'"), (".lock/", "a part ending in '.lock'"))
_REF_BAD_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
MAX_REVISION = 255  # git keeps a ref as a file: a path part of at most 255 bytes


def check_revision(text: str) -> str:
    """`text` when it is a branch name git (and so the Hub) accepts: not empty, no space,
    control character or any of `~^:?*[\\`, no `..`, `@{` or `//`, no part starting with `.` or
    ending in `.lock`, not starting or ending with `/`, not ending with `.`, not `@`. Anything
    else is a MultipltError naming the problem, so a bad name is refused before the upload
    rather than by the Hub at the end of it."""
    why = _revision_problem(text)
    if why:
        raise MultipltError(f"bad --revision {text!r}: {why}; give a branch name such as main")
    return text


def _revision_problem(text: str) -> str | None:
    if not text:
        return "it is empty"
    bad = _REF_BAD_CHARS.search(text)
    if bad:
        char = bad[0]
        return "it contains " + ("a space" if char == " " else repr(char) if char.isprintable()
                                 else "a control character")
    if text.startswith("/") or text.endswith("/"):
        return "it starts or ends with '/'"
    if text.endswith("."):
        return "it ends with '.'"
    if text == "@":
        return "'@' alone is no branch name"
    for part, what in _REF_BAD_PARTS:
        if part in f"/{text}/":
            return f"it contains {what}"
    if len(text.encode("utf-8", "surrogatepass")) > MAX_REVISION:
        return f"it is over {MAX_REVISION} bytes"
    return None


# The Hub's license ids (apache-2.0, mit, cc-by-4.0, bigcode-openrail-m, openrail++, other, ...)
# are lower case letters, digits, '.', '-' and '+'.
_LICENSE = re.compile(r"[a-z0-9][a-z0-9.+-]*")  # fullmatch: `$` would let a last "\n" through
MAX_LICENSE = 64


def check_license(text: str) -> str:
    """`text` when it reads as a Hub license id; anything else (empty, spaces, a newline, which
    would break the card's YAML, upper case, other characters) is a MultipltError."""
    if not text.strip():
        raise MultipltError("--license is empty: give a license id (e.g. apache-2.0) or leave the "
                            "option out for the default")
    if len(text) <= MAX_LICENSE and _LICENSE.fullmatch(text):
        return text
    lower = text.lower()
    hint = f" (did you mean {lower!r}?)" if len(text) <= MAX_LICENSE and _LICENSE.fullmatch(lower) else ""
    raise MultipltError(f"bad --license {text!r}: a Hub license id is lower case letters, digits, "
                        f"'.', '-' and '+', at most {MAX_LICENSE} characters, e.g. apache-2.0, mit, "
                        f"cc-by-4.0 or other{hint}")
