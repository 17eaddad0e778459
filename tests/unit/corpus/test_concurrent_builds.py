"""Two `corpus build`s of other configs started at once into one new --out on object storage:
both found no config when they began, so the check at the start passes both. The config is
recorded with a conditional create; the build that finds another config there is refused before
writing its parts or marker, so the folder never mixes the config of one with the shards of the
other.

The interleaving is made deterministic by running the second build from inside the first one's
shard, after its checks and before its writes, where a real second process could run."""

import dataclasses
import json

import pytest

from multiplt import storage
from multiplt.corpus import parts, pin, pipeline
from multiplt.corpus.config import CorpusConfig
from multiplt.errors import MultipltError

FNS = "".join(f'def f{i}(x):\n    """Doc {i}."""\n    y = x * {i} + {i + 1}\n    return y - {i}\n\n\n'
              for i in range(3))


def other_after_checks(monkeypatch, other):
    """The first build's shard runs `other()` to its end right after its checks, before it opens
    its input (pin.open_input) and writes anything."""
    real = pin.open_input
    state = {"raced": False}

    def open_input(*args, **kwargs):
        if not state["raced"]:
            state["raced"] = True
            other()
        return real(*args, **kwargs)

    monkeypatch.setattr(pin, "open_input", open_input)
    return state


@pytest.fixture
def config(tmp_path, s3_bucket):
    """Three files of three functions each; a one-problem benchmark; no type check; --out new."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a", "b", "c"):
        (src / f"{name}.py").write_text(FNS.replace("def f", f"def {name}"))
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"task_id": 1, "text": "Add.",
                                 "code": "def add(a, b):\n    return a + b\n"}) + "\n")
    return CorpusConfig(source=str(src), out=f"{s3_bucket}/corpus/c1", benchmarks=(str(bench),),
                        typecheck=False)


@pytest.mark.parametrize("shards", [1, 2])
def test_a_build_of_another_config_begun_at_once_is_refused_before_its_parts(config, monkeypatch,
                                                                          shards):
    """The other build (--limit 1) ran between this one's checks and its first write: this one
    (no limit) is refused naming the difference, before its parts (one shard) or before it reads
    a document (the first shard of two to start records the config, as it records the input),
    and the shard's config, parts and marker are all the other's."""
    other = dataclasses.replace(config, limit=1)
    recorded = other.with_benchmark_digests().fingerprint()  # the build records the digests
    run = ((lambda cfg: pipeline.build(cfg)) if shards == 1
           else (lambda cfg: pipeline.build(cfg, (0, 2))))
    state = other_after_checks(monkeypatch, lambda: run(other))
    with pytest.raises(MultipltError, match=r"^s3://\S+/corpus/c1 holds a build with another config "
                                            r"\(limit: 1 there, none now\); use a fresh --out$"):
        run(config)
    assert state["raced"]
    assert storage.read_json(storage.join(config.out, "_work", "config.json"))["fingerprint"] == recorded
    _, finished = parts.completed(config.out, "shards")
    assert list(finished) == [0]
    shard = finished[0]
    assert parts.done(shard)["fingerprint"] == recorded
    assert storage.read_json(storage.join(shard, "stats.json"))["files"]["read"] == 1  # --limit 1
    # a rerun of either is as it was: the other's resumes, this one's is refused
    run(other)
    with pytest.raises(MultipltError, match="holds a build with another config"):
        run(config)
