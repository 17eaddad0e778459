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


def _records_digests(out: str) -> bool:
    """Whether the build under `out` records its benchmarks' digests: a new one does; one begun
    by a version that did not record them (its config has no `benchmark_sha256`) is finished as
    it was begun, without them, rather than refused."""
    from multiplt import storage
    from multiplt.corpus.shard import config_uri

    uri = config_uri(out)
    try:
        recorded = storage.read_json(uri) if storage.exists(uri) else None
    except Exception:  # noqa: BLE001 - check_config names an unreadable config
        return True
    return not (isinstance(recorded, dict) and "benchmark_sha256" not in recorded)


def build(cfg: CorpusConfig, shard: tuple[int, int] | None = None) -> dict:
    if _records_digests(cfg.out):  # a benchmark file changed between shards is another config
        cfg = cfg.with_benchmark_digests()
    validate(cfg, 1 if shard is None else shard[1])
    if shard is not None:
        return run_shard(cfg, *shard)
    run_shard(cfg, 0, 1, require_input=True)
    run_bucket(cfg.out, 0, 1)
    return merge(cfg.out)
