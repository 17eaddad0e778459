"""The backend family: one registry (backends.py) lists every Backend subclass in
multiplt/generation/, each implements the whole interface (from_options, describe, generate), and
`multiplt generate --backend` and the DAG Params offer exactly the registered names."""

from __future__ import annotations

import ast
import hashlib
import inspect
import pathlib
import subprocess
import sys

import pytest

from multiplt.errors import MultipltError
from multiplt.generation import backends
from multiplt.generation.base import Backend, Description

REPO = pathlib.Path(__file__).resolve().parents[3]
GENERATION = REPO / "multiplt" / "generation"


def backend_classes_on_disk() -> dict[str, str]:
    """`module:Class` of every class in multiplt/generation/*.py that subclasses Backend."""
    found = {}
    for path in sorted(GENERATION.glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and any(
                    isinstance(b, ast.Name) and b.id == "Backend" for b in node.bases):
                found[f"multiplt.generation.{path.stem}:{node.name}"] = path.name
    return found


def test_registry_lists_every_backend_module_on_disk():
    assert set(backends.REGISTRY.values()) == set(backend_classes_on_disk())
    assert backends.NAMES == tuple(backends.REGISTRY)


@pytest.mark.parametrize("name", backends.NAMES)
def test_each_backend_implements_the_interface(name):
    cls = backends.backend_class(name)
    assert issubclass(cls, Backend) and cls.name == name
    assert not inspect.isabstract(cls), f"{cls.__name__} leaves abstract methods unimplemented"
    assert inspect.signature(cls.describe).return_annotation in (Description, "Description")


def test_base_imports_no_backend():
    tree = ast.parse((GENERATION / "base.py").read_text())
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in imported if m and m.startswith("multiplt.generation")], imported


def test_unknown_backend_names_the_choices():
    with pytest.raises(MultipltError, match="unknown generation backend 'nope'.*replay"):
        backends.make_backend("nope")


def test_describe_is_uniform(tmp_path):
    source = tmp_path / "c.jsonl"
    source.write_text('{"name": "p", "completion": "x"}\n')
    replay = backends.make_backend("replay", replay_source=str(source), model=None)
    openai = backends.make_backend("openai", model="m", api_base="http://127.0.0.1:9/v1")
    assert replay.describe().as_record() == {
        "replay_source": str(source),
        "model_identity": "sha256:" + hashlib.sha256(source.read_bytes()).hexdigest()}
    assert openai.describe().as_record() == {"model": "m", "api_base": "http://127.0.0.1:9/v1"}


def test_cli_and_dag_params_offer_the_registered_names():
    from multiplt import cli

    parser = cli.build_parser()
    for command in ("generate", "evaluate", "testgen", "translate"):
        sub = parser._subparsers._group_actions[0].choices[command]
        choices = next(a.choices for a in sub._actions if a.dest == "backend")
        assert tuple(choices) == backends.NAMES, command
    # the DAG Params import the registry without torch (DAG files must stay cheap to parse)
    code = ("import sys; sys.path.insert(0, 'dags'); from multiplt_pipelines import params; "
            "print(params.SAMPLING['backend']['enum']); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == [str(list(backends.NAMES)), "False"]
