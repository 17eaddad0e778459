"""The whole build in one process: shard 0 of 1, dedup bucket 0 of 1, merge. With --shard K/N
only that shard runs (the DAG maps shards, then `corpus dedup`, then `corpus merge`)."""

from __future__ import annotations

from multiplt.corpus import decontam, sources
from multiplt.corpus.config import CorpusConfig
from multiplt.corpus.dedup import run_bucket
from multiplt.corpus.merge import merge
from multiplt.corpus.shard import check_config, check_shard_count, run_shard


def validate(cfg: CorpusConfig, n: int = 1) -> None:
    """Everything that can be checked before anything is written under --out (n: the shard
    count of this run, 1 without --shard)."""
    source = sources.resolve(cfg.source)
    if not source.units():
        from multiplt.errors import MultipltError

        raise MultipltError(f"--source {cfg.source} is an empty corpus")
    decontam.load(cfg.benchmarks)
    check_config(cfg.out, cfg)
    check_shard_count(cfg.out, n)


def build(cfg: CorpusConfig, shard: tuple[int, int] | None = None) -> dict:
    cfg = cfg.with_benchmark_digests()  # a benchmark file changed between shards is another config
    validate(cfg, 1 if shard is None else shard[1])
    if shard is not None:
        return run_shard(cfg, *shard)
    run_shard(cfg, 0, 1, require_input=True)
    run_bucket(cfg.out, 0, 1)
    return merge(cfg.out)
