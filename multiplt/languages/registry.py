"""The registry of languages. A test checks this exact set: py rkt jl r ml lua."""

from __future__ import annotations

from multiplt.errors import MultipltError
from multiplt.languages.base import Language
from multiplt.languages.julia import JuliaLanguage
from multiplt.languages.lua import LuaLanguage
from multiplt.languages.ocaml import OCamlLanguage
from multiplt.languages.python import PythonLanguage
from multiplt.languages.r import RLanguage
from multiplt.languages.racket import RacketLanguage

LANGUAGES: dict[str, Language] = {
    lang.code: lang
    for lang in (
        PythonLanguage(),
        RacketLanguage(),
        JuliaLanguage(),
        RLanguage(),
        OCamlLanguage(),
        LuaLanguage(),
    )
}

# Names used by older MultiPL-E files and by the published dataset's splits.
_ALIASES = {lang.name: code for code, lang in LANGUAGES.items()}
_ALIASES.update({"humaneval_to_r.py": "r", "python3": "py"})


def names() -> list[str]:
    return list(LANGUAGES)


def get(code: str) -> Language:
    """The language for a code (`rkt`) or name (`racket`); a clear error for anything else."""
    key = _ALIASES.get(code, code)
    try:
        return LANGUAGES[key]
    except KeyError:
        raise MultipltError(
            f"unknown language {code!r}; known: {', '.join(LANGUAGES)}") from None
