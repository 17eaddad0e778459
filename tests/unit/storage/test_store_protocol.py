"""Storage is one declared protocol (`storage.base.Store`): the local and S3 modules implement
every method with its signature, the public API dispatches only through it, and no package
code outside multiplt/storage/ reaches a backend (or boto3) directly."""

from __future__ import annotations

import ast
import inspect
import pathlib

import pytest

from multiplt import storage
from multiplt.storage import local, s3
from multiplt.storage.base import Store

PACKAGE = pathlib.Path(storage.__file__).resolve().parents[1]
METHODS = [name for name, member in vars(Store).items()
           if callable(member) and not name.startswith("_")]


def test_protocol_declares_listing_and_copies():
    assert {"read_bytes", "write_bytes", "put_file", "get_file", "copy", "exists", "ls", "listing",
            "delete", "read_range", "open_stream"} <= set(METHODS)


@pytest.mark.parametrize("backend", [local, s3], ids=["local", "s3"])
def test_backend_implements_every_method_with_its_signature(backend):
    assert isinstance(backend, Store)
    for name in METHODS:
        want = list(inspect.signature(getattr(Store, name)).parameters)[1:]  # without self
        got = list(inspect.signature(getattr(backend, name)).parameters)
        assert got == want, f"{backend.__name__}.{name}{got} != Store.{name}{want}"


def test_every_scheme_has_a_store():
    assert set(storage.STORES) == {"file", "s3"}
    assert storage.STORES["file"] is local and storage.STORES["s3"] is s3


def test_nothing_outside_storage_reaches_a_backend():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "storage":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module + "." + a.name for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id == "storage" and node.attr in ("s3", "local"):
                names = [f"storage.{node.attr}"]
            bad = [n for n in names if n.startswith(("multiplt.storage.s3", "multiplt.storage.local",
                                                      "storage.s3", "storage.local", "boto3", "botocore"))]
            offenders += [f"{path.relative_to(PACKAGE.parent)}: {n}" for n in bad]
    assert not offenders, offenders
