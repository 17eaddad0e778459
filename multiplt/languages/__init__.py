"""Target languages: one module per language behind `multiplt.languages.base.Language`."""

from multiplt.languages.registry import LANGUAGES, get, names, targets

__all__ = ["LANGUAGES", "get", "names", "targets"]
