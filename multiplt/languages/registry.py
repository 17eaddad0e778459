"""The registry of languages: every module of this package that defines a `Language` is one.

Adding a language is adding one module here (plus its test fixtures, its Debian packages in
scripts/setup.sh and the sandbox image, and its HumanEval 32 template: docs/languages.md, "Adding
a language"): the CLI's `--lang` checks, the benchmark builder, the translation's cleaning, the
executor's preflight, its library cache and the pipelines' language lists all read this registry.
Helper modules (base, types, this one) define no Language and are skipped. A module whose
Language lacks a required class attribute (`required()`), an abstract method or (a translation
target) `seal_tests`, or whose `code`
is not lower-case letters, is refused when the registry loads, on the first import of
multiplt.languages (a TypeError naming the module, the class and what it lacks).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import sys

from multiplt.errors import MultipltError
from multiplt.languages.base import Language

#: code -> language, sorted by code; filled by load() and only ever updated in place
LANGUAGES: dict[str, Language] = {}
_ALIASES: dict[str, str] = {}
# Names used by older MultiPL-E files.
_LEGACY_ALIASES = {"humaneval_to_r.py": "r", "python3": "py"}
_CODE = re.compile(r"[a-z]+")


def required() -> list[str]:
    """The class attributes every language must set: Language's ClassVar annotations that have
    no default (`code`, `name`, `binaries`, `packages`, `test_marker`, ...)."""
    return [name for name, annotation in Language.__annotations__.items()
            if str(annotation).startswith(("ClassVar", "typing.ClassVar"))
            and name not in vars(Language)]


def _missing(cls: type) -> list[str]:
    """What `cls` lacks to be a complete Language: required attributes, then abstract methods,
    then, for a translation target (`target`), its own `seal_tests` (the translate stage's test
    program, which Language does not define)."""
    unsealed = getattr(cls, "target", True) and getattr(cls, "seal_tests", None) is Language.seal_tests
    return ([name for name in required() if not hasattr(cls, name)]
            + [f"{name}()" for name in sorted(getattr(cls, "__abstractmethods__", ()))]
            + (["seal_tests() (a translation target)"] if unsealed else []))


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
        concrete = [c for c in defined if not inspect.isabstract(c) and not _missing(c)]
        if len(concrete) != 1:
            lacking = "".join(f"; {c.__name__} lacks {', '.join(_missing(c))}"
                              for c in defined if _missing(c))
            raise TypeError(f"{module.__name__} must define exactly one complete Language "
                            f"subclass; it defines {[c.__name__ for c in defined]}{lacking}")
        if not isinstance(concrete[0].code, str) or not _CODE.fullmatch(concrete[0].code):
            raise TypeError(f"{module.__name__}: {concrete[0].__name__}.code "
                            f"{concrete[0].code!r} must be lower-case letters a-z only (it "
                            f"names files, tags LANG-EXPERIMENT-epochN and pipeline parameters)")
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
