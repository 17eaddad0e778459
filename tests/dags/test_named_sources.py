"""A corpus source named by a keyword (`stdlib`) is one entry of
multiplt.corpus.sources.NAMED_SOURCES, which the resolver, the multiplt_corpus DAG's checks and
the main job (plugins/multiplt_airflow/job_models.py) all read: adding one there is enough for
all three to take it as a name, not as a (relative) path."""

from __future__ import annotations

import argparse

import pytest

from tests.dags.test_pipeline_plans import defaults  # puts dags/ and plugins/ on sys.path
from multiplt.corpus import sources
from multiplt.errors import MultipltError
from multiplt_airflow import job_models  # noqa: E402
from multiplt_pipelines import checks  # noqa: E402
from multiplt_pipelines.corpus import CORPUS  # noqa: E402


@pytest.fixture
def demo(tmp_path, monkeypatch):
    """A named source `demo`: a folder of one .py file, as `stdlib` is the interpreter's."""
    root = tmp_path / "demo-corpus"
    root.mkdir()
    (root / "m.py").write_text("def f():\n    \"\"\"One.\"\"\"\n    return 1\n")
    monkeypatch.setitem(sources.NAMED_SOURCES, "demo",
                        lambda: sources.FolderSource(str(root), "demo", prefix="demo:"))
    return root


def test_stdlib_is_a_named_source():
    assert "stdlib" in sources.NAMED_SOURCES
    assert sources.resolve("stdlib").revision.startswith("python ")
    assert CORPUS["source"]["description"].endswith("hf://datasets/OWNER/NAME[/DIR], or stdlib")


def test_the_resolver_takes_a_named_source_and_lists_it_for_an_unknown_scheme(demo):
    source = sources.resolve("demo")
    assert source.units() == ["m.py"]
    assert [doc.origin for doc in source.read("m.py")] == ["demo:m.py"]
    with pytest.raises(MultipltError, match=r"unknown scheme gs:// \(use a path, file://, s3://, "
                       r"hf://datasets/OWNER/NAME, or stdlib or demo\)"):
        sources.resolve("gs://bucket/x")


def test_the_corpus_dag_does_not_refuse_a_named_source_as_a_relative_path(demo):
    checks.corpus(defaults(CORPUS, source="demo"))
    checks.corpus(defaults(CORPUS, source="stdlib"))
    with pytest.raises(checks.BadParams, match="Param source: 'demo2' is a relative path"):
        checks.corpus(defaults(CORPUS, source="demo2"))


def test_the_main_job_keeps_a_named_source_as_it_is(demo, tmp_path, monkeypatch):
    """Even where a folder of that name exists: the stage reads the named source. A model of
    that name is a path (named sources are corpus sources only)."""
    (tmp_path / "demo").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MULTIPLT_CALLER_PWD", raising=False)
    args = argparse.Namespace(model="demo", teacher=None, source="demo")
    job_models.absolute_local_paths(args)
    assert (args.model, args.source) == (str(tmp_path / "demo"), "demo")
