"""PyYAML's safe loader made strict where a hand edit would otherwise pass unseen, with every
parse error told in one line. Read this way: training recipes (multiplt.training.recipe_yaml,
which adds YAML 1.2 numbers) and run records (`_multiplt_run.yaml`, run_folder.parse_run_yaml).

A key written twice in one mapping (`seq_len: 64` then `seq_len: 128`; a second `model:` typed
into a run record) is an error: PyYAML keeps the last one silently, so one of the two values the
author wrote would be ignored. Merge keys (`<<: *defaults`) may appear more than once.
"""

from __future__ import annotations

import yaml

from multiplt.errors import MultipltError

_MERGE_TAG = "tag:yaml.org,2002:merge"


class StrictLoader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            _refuse_duplicate_keys(self, node)
        return super().construct_mapping(node, deep=deep)


def _refuse_duplicate_keys(loader: StrictLoader, node: yaml.MappingNode) -> None:
    first_line: dict = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:
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


def parse(text: str, where: str, loader: type[StrictLoader] = StrictLoader):
    """The YAML document in `text` (read from `where`), or one MultipltError line naming `where`,
    the line and column, and the parser's reason."""
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 (a SafeLoader subclass)
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
