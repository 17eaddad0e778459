"""A shard's reader: every function of a document through the row blocks and signatures, with
what it drops counted in the funnel (never a traceback)."""

import json

import polars as pl

from multiplt.corpus import decontam, pipeline
from multiplt.corpus.config import CorpusConfig
from multiplt.corpus.extract import MAX_DEPTH
from multiplt.corpus.shard import ShardReader
from multiplt.corpus.sources import Document
from tests.unit.corpus.helpers import nested_calls

DEEP = 'def big(x):\n    """Concatenates."""\n    return "a"' + ' + "b"' * 250 + "\n"
FINE = 'def small(x):\n    """Doubles and adds one."""\n    y = x * 2\n    return y + 1\n'


def test_a_too_deep_function_is_dropped_and_counted_and_the_build_goes_on(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "gen.py").write_text(DEEP + FINE)
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"task_id": 1, "text": "Add.", "code": "def add(a, b):\n    return a + b\n"}) + "\n")
    out = tmp_path / "out"
    funnel = pipeline.build(CorpusConfig(source=str(tmp_path / "src"), out=str(out),
                                         benchmarks=(str(bench),), typecheck=False))
    assert funnel["steps"][0] == {"name": "extracted", "reason": "too_deep", "in": 2, "out": 1,
                                  "seconds": funnel["steps"][0]["seconds"]}
    assert funnel["steps"][-1]["out"] == 1 and funnel["files"] == {"read": 1, "syntax_error": 0}
    kept = pl.read_parquet(out / "functions" / "part-00000.parquet")
    excluded = pl.read_parquet(out / "excluded" / "part-00000.parquet")
    assert kept["id"].to_list() == ["gen.py:4:small"]
    assert excluded.select("id", "reason").rows() == [("gen.py:1:big", "too_deep")]


def test_an_async_function_is_dropped_and_counted_before_the_docstring_check():
    reader = ShardReader(CorpusConfig(source="s", out="o", typecheck=False), decontam.Benchmarks())
    source = FINE + "\n\nasync def later(x):\n    \"\"\"Awaits nothing.\"\"\"\n    y = x * 2\n    return y + 1\n"
    reader.document(Document("a.py", source.encode(), {"path": "a.py"}))
    assert [row["id"] for row in reader.rows] == ["a.py:1:small"]
    assert [(row["id"], row["reason"]) for row in reader.excluded] == [("a.py:7:later", "async_function")]
    steps = reader.steps()
    assert [(s["name"], s["reason"], s["in"], s["out"]) for s in steps[:4]] == [
        ("extracted", "too_deep", 2, 2), ("async_def", "async_function", 2, 1),
        ("generator", "generator_function", 1, 1), ("docstring", "no_docstring", 1, 1)]


def test_the_deepest_kept_function_clears_every_recursive_step_with_stack_to_spare():
    """A MAX_DEPTH-deep tree of the costliest shape runs through decontamination's copy and
    unparse and the signatures' unparse with 300 frames already on the stack."""
    reader = ShardReader(CorpusConfig(source="s", out="o", typecheck=False), decontam.Benchmarks())
    doc = Document("g.py", nested_calls(MAX_DEPTH - 4).encode(), {"path": "g.py"})

    def under(frames: int) -> None:
        if frames:
            return under(frames - 1)
        reader.document(doc)
    under(300)
    (row,) = reader.rows
    assert row["id"] == "g.py:1:g" and row["exact_key"] and list(reader.excluded) == []
    assert reader.steps()[0]["in"] == reader.steps()[0]["out"] == 1


def _one_file_config(tmp_path) -> CorpusConfig:
    """A corpus of one file (FINE) with a one-problem benchmark, no type check, out in tmp_path."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "gen.py").write_text(FINE)
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"task_id": 1, "text": "Add.", "code": "def add(a, b):\n    return a + b\n"}) + "\n")
    return CorpusConfig(source=str(tmp_path / "src"), out=str(tmp_path / "out"),
                        benchmarks=(str(bench),), typecheck=False)


def test_a_build_made_with_other_filter_steps_is_not_resumed(tmp_path, monkeypatch):
    """The fingerprint covers the filter steps (as their drop reasons): an --out begun by a
    version with other steps (before async functions were dropped, say) is refused, not
    finished with a mix of both versions' rows."""
    import pytest

    import multiplt.corpus
    from multiplt.errors import MultipltError

    cfg = _one_file_config(tmp_path)
    now = cfg.fingerprint()
    older = tuple(r for r in multiplt.corpus.REASONS if r != "async_function")
    monkeypatch.setattr(multiplt.corpus, "REASONS", older)
    assert cfg.fingerprint() != now
    pipeline.build(cfg)  # built by the "older" steps
    monkeypatch.setattr(multiplt.corpus, "REASONS", older + ("async_function",))
    with pytest.raises(MultipltError, match="holds a build with this config but other filter steps "
                                            "[(]begun by another version: fingerprint "):
        pipeline.build(cfg)


def test_a_build_with_another_config_is_refused_naming_each_difference(tmp_path):
    """The refusal names every setting that differs (not --out or --workers), as generate's and
    testgen's do, and writes nothing."""
    import dataclasses

    import pytest

    from multiplt.errors import MultipltError

    cfg = _one_file_config(tmp_path)
    pipeline.build(cfg)
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "out").rglob("*"))
    other = dataclasses.replace(cfg, limit=10, near_threshold=0.8, workers=4)
    with pytest.raises(MultipltError) as caught:
        pipeline.build(other)
    assert str(caught.value) == (f"{cfg.out} holds a build with another config (limit: none there, "
                                 f"10 now; near_threshold: 0.7 there, 0.8 now); use a fresh --out")
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "out").rglob("*")) == before
    pipeline.build(dataclasses.replace(cfg, workers=4))  # how fast is no difference


def test_a_benchmark_file_changed_between_shards_is_another_config(tmp_path):
    """The shards of one build decontaminate against the same benchmark bytes, not only the same
    benchmark names: shard 1 after the file was rewritten is refused, naming benchmark_sha256,
    and the recorded config carries the digest; the same bytes again are accepted."""
    import hashlib

    import pytest

    from multiplt.corpus.merge import merge
    from multiplt.corpus.dedup import run_bucket
    from multiplt.errors import MultipltError

    cfg = _one_file_config(tmp_path)
    bench = tmp_path / "bench.jsonl"
    original = bench.read_bytes()
    pipeline.build(cfg, (0, 2))
    recorded = json.loads((tmp_path / "out" / "_work" / "config.json").read_text())
    assert recorded["benchmark_sha256"] == [hashlib.sha256(original).hexdigest()]
    bench.write_text(json.dumps({"task_id": 9, "text": "Other.", "code": "def other():\n    return 0\n"}) + "\n")
    with pytest.raises(MultipltError, match="holds a build with another config [(]benchmark_sha256: "):
        pipeline.build(cfg, (1, 2))
    bench.write_bytes(original)
    pipeline.build(cfg, (1, 2))
    run_bucket(cfg.out, 0, 1)
    merge(cfg.out)
    assert json.loads((tmp_path / "out" / "corpus_config.json").read_text())["benchmark_sha256"] == [
        hashlib.sha256(original).hexdigest()]



def test_a_build_begun_before_benchmark_digests_were_recorded_is_finished(tmp_path, monkeypatch):
    """A sharded build begun by the version before digests were recorded (its config has no
    benchmark_sha256) is finished without them, not refused: its done shard is skipped, the
    other built, merged; its config stays as it was."""
    from multiplt.corpus.dedup import run_bucket
    from multiplt.corpus.merge import merge

    cfg = _one_file_config(tmp_path)
    with monkeypatch.context() as old_version:  # that version recorded no digests
        old_version.setattr(CorpusConfig, "with_benchmark_digests", lambda self: self)
        pipeline.build(cfg, (0, 2))
    uri = tmp_path / "out" / "_work" / "config.json"
    recorded = json.loads(uri.read_text())
    recorded.pop("benchmark_sha256")  # the old version's config had no such key
    uri.write_text(json.dumps(recorded))
    pipeline.build(cfg, (0, 2))  # done: skipped, not refused
    pipeline.build(cfg, (1, 2))
    run_bucket(cfg.out, 0, 1)
    merge(cfg.out)
    assert json.loads(uri.read_text()) == recorded
