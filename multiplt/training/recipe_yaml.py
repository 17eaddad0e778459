"""The YAML parser of training recipes: PyYAML's safe loader, made strict where a recipe typo would
otherwise pass unseen, and with every parse error told in one line.

- A key written twice (`seq_len: 64` then `seq_len: 128`) is an error: PyYAML keeps the last one
  silently, so one of the two values the author wrote would be ignored.
- `1e-3` is a number, as in YAML 1.2 and JSON: PyYAML follows YAML 1.1, whose floats need a dot
  (`1.0e-3`), and reads `1e-3` as a string, which the recipe's typed fields would refuse.
"""

from __future__ import annotations

import re

import yaml

from multiplt.errors import MultipltError

_MERGE_TAG = "tag:yaml.org,2002:merge"


class RecipeLoader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            _refuse_duplicate_keys(self, node)
        return super().construct_mapping(node, deep=deep)


def _refuse_duplicate_keys(loader: RecipeLoader, node: yaml.MappingNode) -> None:
    first_line: dict = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:  # `<<: *defaults` may be written more than once
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            earlier = first_line.get(key)
        except TypeError:  # an unhashable key: the safe loader's own error names it
            continue
        if earlier is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {earlier})", key_node.start_mark)
        first_line[key] = key_node.start_mark.line + 1


RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def parse(text: str, where: str):
    """The YAML document in `text` (read from `where`), or one MultipltError line naming `where`,
    the line and column, and the parser's reason."""
    try:
        return yaml.load(text, Loader=RecipeLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as exc:
        raise MultipltError(f"{where} is not valid YAML: {_reason(exc)}") from None
    except yaml.YAMLError as exc:  # a character YAML does not allow (no mark: its first line says it)
        raise MultipltError(f"{where} is not valid YAML: {str(exc).splitlines()[0]}") from None


def _at(mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _reason(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    reason = " ".join(str(exc.problem or exc.context).split())
    text = f"{_at(mark)}: {reason}" if mark else reason
    if exc.context and exc.problem and exc.context_mark:
        text += f" ({' '.join(exc.context.split())} at {_at(exc.context_mark)})"
    return text
