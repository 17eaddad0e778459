"""One shard of a build: the K-th of N round-robin slices of the source's sorted input units,
extracted and passed through every per-row filter; its kept rows get dedup signatures. Writes
its parts, then its completion marker; a shard whose marker exists is skipped."""

from __future__ import annotations

import logging
import time

from multiplt import storage
from multiplt.corpus import decontam, extract, filters, parts, sources
from multiplt.corpus.config import CorpusConfig
from multiplt.corpus.typecheck import TypeCheckFilter
from multiplt.errors import MultipltError
from multiplt.log import Funnel, progress

LOG = logging.getLogger("multiplt.corpus")


def blocks(cfg: CorpusConfig, bench: decontam.Benchmarks) -> list:
    chain = [filters.DocstringFilter(), filters.ReturnFilter(), filters.AsciiFilter(),
             filters.TodoFilter(), filters.TooShortFilter(cfg.too_short_nodes),
             decontam.DecontaminationFilter(bench)]
    if cfg.typecheck:
        chain.append(TypeCheckFilter(cfg.typecheck_batch, cfg.workers, cfg.typecheck_timeout,
                                     progress=_batch_progress()))
    return chain


def _batch_progress():
    state = {"done": 0}

    def report(n: int, total: int) -> None:
        state["done"] += n
        LOG.info("type check: %d/%d batches", state["done"], total)
    return report


def check_config(out: str, cfg: CorpusConfig) -> None:
    """The config of the run already under `out`, if any, must be this one."""
    uri = storage.join(out, "_work", "config.json")
    if storage.exists(uri):
        old = storage.read_json(uri)
        if old.get("fingerprint") != cfg.fingerprint():
            raise MultipltError(f"{out} holds a build with another config ({old.get('source')}, "
                                f"fingerprint {old.get('fingerprint')}); use a fresh --out")


def read_shard(cfg: CorpusConfig, source, k: int, n: int) -> tuple[list[dict], list[dict], dict]:
    """Extract every function of the shard's documents -> (rows, syntax_error rows, counts)."""
    units = source.units()[k::n]
    rows: list[dict] = []
    excluded: list[dict] = []
    files = {"read": 0, "syntax_error": 0}
    for unit in progress(units, total=len(units), desc=f"corpus shard {k}/{n}", unit="file"):
        for doc in source.read(unit):
            if cfg.limit is not None and files["read"] >= cfg.limit:
                return rows, excluded, files
            files["read"] += 1
            found, bad = extract.extract(doc)
            if bad is not None:
                files["syntax_error"] += 1
                excluded.append(bad)
            rows.extend(found)
    return rows, excluded, files


def run_shard(cfg: CorpusConfig, k: int, n: int, require_input: bool = False) -> dict:
    folder = parts.shard_dir(cfg.out, k, n)
    finished = parts.done(folder)
    if finished is not None:
        if finished.get("fingerprint") != cfg.fingerprint():
            raise MultipltError(f"shard {k}/{n} under {cfg.out} was built with another config")
        LOG.info("corpus shard %d/%d: already done, skipped", k, n)
        return storage.read_json(storage.join(folder, "stats.json"))
    check_config(cfg.out, cfg)
    source = sources.resolve(cfg.source)
    bench = decontam.load(cfg.benchmarks)
    start = time.perf_counter()
    rows, excluded, files = read_shard(cfg, source, k, n)
    if require_input and files["read"] == 0:
        raise MultipltError(f"--source {cfg.source} is an empty corpus: no documents to read")
    for row in rows:
        row["source"] = cfg.source
    for row in excluded:
        row["source"] = cfg.source
    steps = [{"name": "extracted", "in": len(rows), "out": len(rows),
              "seconds": round(time.perf_counter() - start, 3)}]
    for block in blocks(cfg, bench):
        rows = block.run(rows, excluded)
        steps.append({"name": block.name, "reason": block.reason, **block.stats})
        funnel = Funnel(f"corpus shard {k}/{n} {block.name}")
        funnel.keep(block.stats["out"])
        funnel.drop(block.reason, block.stats["in"] - block.stats["out"])
        funnel.log(LOG)
    sign_start = time.perf_counter()
    from multiplt.corpus.signatures import Signer

    signer = Signer(cfg.num_perm, cfg.shingle, cfg.near_threshold)
    for row in rows:
        signer.sign(row)
    stats = {"shard": [k, n], "files": files, "steps": steps,
             "signature_seconds": round(time.perf_counter() - sign_start, 3),
             "seconds": round(time.perf_counter() - start, 3)}
    config_uri = storage.join(cfg.out, "_work", "config.json")
    if not storage.exists(config_uri):
        storage.write_json(config_uri, cfg.as_dict(), indent=2)
    storage.write_parquet(storage.join(folder, "kept.parquet"), parts.frame(rows, parts.KEPT))
    storage.write_parquet(storage.join(folder, "excluded.parquet"), parts.frame(excluded, parts.EXCLUDED))
    storage.write_json(storage.join(folder, "stats.json"), stats, indent=2)
    parts.finish(folder, {"fingerprint": cfg.fingerprint(), "kept": len(rows), "excluded": len(excluded)})
    LOG.info("corpus shard %d/%d: %d files, %d functions kept, %d rows excluded, %.1f s",
             k, n, files["read"], len(rows), len(excluded), stats["seconds"])
    return stats
