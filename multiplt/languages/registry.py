"""The registry of languages: every module of this package that defines a `Language` is one.

Adding a language is adding one module here (plus its test fixtures): the registry, the CLI's
`--lang` checks, the executor's preflight, its library cache and the pipelines' language lists
all read this registry. Helper modules (base, types, this one) define no Language and are skipped.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys

from multiplt.errors import MultipltError
from multiplt.languages.base import Language

#: code -> language, sorted by code; filled by load() and only ever updated in place
LANGUAGES: dict[str, Language] = {}
_ALIASES: dict[str, str] = {}
# Names used by older MultiPL-E files.
_LEGACY_ALIASES = {"humaneval_to_r.py": "r", "python3": "py"}


def load() -> None:
    """(Re)discover the languages of the package (its __path__) and fill LANGUAGES."""
    package = sys.modules[__package__]
    found: dict[str, Language] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__package__}.{info.name}")
        defined = [c for c in vars(module).values() if isinstance(c, type)
                   and issubclass(c, Language) and c is not Language
                   and c.__module__ == module.__name__]
        if not defined:
            continue
        concrete = [c for c in defined if not inspect.isabstract(c)]
        if len(concrete) != 1:
            raise TypeError(f"{module.__name__} must define exactly one complete Language "
                            f"subclass; it defines {[c.__name__ for c in defined]}")
        lang = concrete[0]()
        if lang.code in found:
            raise TypeError(f"{module.__name__} and {type(found[lang.code]).__module__} both "
                            f"define language {lang.code!r}")
        found[lang.code] = lang
    LANGUAGES.clear()
    LANGUAGES.update(sorted(found.items()))
    _ALIASES.clear()
    # The published dataset's split names, then the legacy names.
    _ALIASES.update({lang.name: code for code, lang in LANGUAGES.items()})
    _ALIASES.update(_LEGACY_ALIASES)


def names() -> list[str]:
    return list(LANGUAGES)


def targets() -> list[str]:
    """The codes of the languages MultiPL-T translates into (all but the source, Python)."""
    return [code for code, lang in LANGUAGES.items() if lang.target]


def codes(spec: str, flag: str) -> list[str]:
    """The codes of a comma-separated list of language codes or names given as `flag` (`rkt,lua`,
    `racket`: a name is its code in every file and folder name), in order, each once.
    MultipltError naming `flag` for a list that names none or an unknown language."""
    named = [part.strip() for part in spec.split(",") if part.strip()]
    if not named:
        raise MultipltError(f"{flag} {spec!r} names no language")
    try:
        return list(dict.fromkeys(get(name).code for name in named))
    except MultipltError as exc:
        raise MultipltError(f"{flag} {spec}: {exc}") from None


def get(code: str) -> Language:
    """The language for a code (`rkt`) or name (`racket`); a clear error for anything else."""
    key = _ALIASES.get(code, code)
    try:
        return LANGUAGES[key]
    except KeyError:
        raise MultipltError(
            f"unknown language {code!r}; known: {', '.join(LANGUAGES)}") from None


load()
