"""The YAML parser of training recipes: multiplt.strict_yaml's (a key written twice is an error,
every parse error one line), where `1e-3` is also a number, as in YAML 1.2 and JSON: PyYAML
follows YAML 1.1, whose floats need a dot (`1.0e-3`), and reads `1e-3` as a string, which the
recipe's typed fields would refuse.
"""

from __future__ import annotations

import re

from multiplt import strict_yaml


class RecipeLoader(strict_yaml.StrictLoader):
    pass


RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def parse(text: str, where: str):
    """The recipe's YAML document in `text` (read from `where`), or one MultipltError line."""
    return strict_yaml.parse(text, where, RecipeLoader)
