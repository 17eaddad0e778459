"""Target languages: one module per language behind `multiplt.languages.base.Language`."""

from multiplt.languages.registry import LANGUAGES, codes, get, names, targets

__all__ = ["LANGUAGES", "codes", "get", "names", "targets"]
