"""One shard of a build: the K-th of N round-robin slices of the input units the build recorded
when it began (pin.py: one listing at one revision for every shard), extracted and passed
through every per-row filter; its kept rows get dedup signatures. Writes its parts, then its
completion marker; a shard whose marker exists is skipped. The type check keeps each finished
batch's verdicts under the shard's `typecheck/`, reused by a rerun."""

from __future__ import annotations

import logging
import time

from multiplt import storage
from multiplt.corpus import decontam, extract, filters, parts, pin
from multiplt.corpus.config import CorpusConfig
from multiplt.corpus.typecheck import TypeCheckFilter
from multiplt.errors import MultipltError
from multiplt.log import Funnel, progress
from multiplt.settings_diff import differences

LOG = logging.getLogger("multiplt.corpus")


def row_blocks(cfg: CorpusConfig, bench: decontam.Benchmarks) -> list:
    """The blocks that see one document's functions at a time (they need its parse tree)."""
    return [filters.AsyncFilter(), filters.GeneratorFilter(), filters.DocstringFilter(),
            filters.ReturnFilter(), filters.AsciiFilter(), filters.TodoFilter(),
            filters.TooShortFilter(cfg.too_short_nodes), decontam.DecontaminationFilter(bench)]


def _batch_progress():
    state = {"done": 0}

    def report(n: int, total: int) -> None:
        state["done"] += n
        LOG.info("type check: %d/%d batches", state["done"], total)
    return report


def config_uri(out: str) -> str:
    return storage.join(out, "_work", "config.json")


def check_config(out: str, cfg: CorpusConfig) -> None:
    """The config of the run already under `out`, if any, must be this one; an `out` holding
    files must be a build's. Every build writes under `_work/` first (its input record and
    config, which a one-shard build writes with its parts, a shard's type check verdicts, its
    parts and marker) and outside it only in the merge,
    so `_work/` holding a file marks a build, also one whose shards run at this moment."""
    from multiplt.storage.outputs import first_file, refuse_foreign

    refuse_foreign(out, lambda: first_file(storage.join(out, "_work")) is not None)
    uri = config_uri(out)
    if storage.exists(uri):
        _refuse_other_config(out, storage.read_json(uri), cfg)


def _refuse_other_config(out: str, old, cfg: CorpusConfig) -> None:
    """MultipltError when `old`, the config recorded under `out`, is not `cfg`'s (its
    fingerprint): naming each setting that differs, or the other filter steps."""
    if not isinstance(old, dict):
        raise MultipltError(f"{config_uri(out)} is not a build's config; use a fresh --out")
    if old.get("fingerprint") != cfg.fingerprint():
        diffs = config_diffs(old, cfg)
        if diffs:
            raise MultipltError(f"{out} holds a build with another config ({'; '.join(diffs)}); "
                                f"use a fresh --out")
        raise MultipltError(f"{out} holds a build with this config but other filter steps (begun "
                            f"by another version: fingerprint {old.get('fingerprint')} there, "
                            f"{cfg.fingerprint()} now); use a fresh --out")


def claim_config(out: str, cfg: CorpusConfig) -> None:
    """Record `cfg` as the config of the build under `out` unless one is recorded there, with a
    conditional create (storage.write_bytes_if, as pin.py records the input): of builds that
    found no config when they began (check_config) and reach this at once, one write wins; the
    config there after must be this one's (_refuse_other_config: another config is one clear
    error, before this shard writes its parts or marker). A server without conditional writes
    gets a plain write when none is there (warned), then the same check."""
    uri = config_uri(out)
    if storage.create(uri, storage.encode_json(uri, cfg.as_dict(), indent=2),
                      f"builds of other configs starting at the same moment into {out} may each "
                      f"write their parts"):
        return
    _refuse_other_config(out, storage.read_json(uri), cfg)


def config_diffs(old: dict, cfg: CorpusConfig) -> list[str]:
    """`key: value there, value now` (settings_diff) for each fingerprinted setting (not --out or
    --workers) that the config recorded under --out (`old`) and `cfg` do not share."""
    new = cfg.as_dict()
    keys = [key for key, value in new.items()
            if key not in ("out", "workers", "fingerprint") and (key not in old or old[key] != value)]
    return differences(old, new, keys + [key for key in old if key not in new])


def check_shard_count(out: str, n: int) -> None:
    """Shards of one build all have one count: dedup and the merge refuse a folder holding
    finished shards of two counts, so a shard of another count than those already finished under
    `out` is refused before it writes anything (the one-process build is shard 0 of 1)."""
    had, finished = parts.completed(out, "shards")
    if had and had != n:
        same = f"--shard K/{had}" if had > 1 else "no --shard (or --shard 0/1)"
        raise MultipltError(f"{out} holds shards of a {had}-shard build (finished: "
                            f"{', '.join(f'{k}/{had}' for k in sorted(finished))}), not of {n}: give "
                            f"{same}, or use another --out for {n} shard(s); nothing written")


class ShardReader:
    """Reads the shard's documents and streams each one's functions through the row blocks;
    survivors get their dedup signatures and shed their parse trees (memory stays bounded by
    the survivors' text, not the shard's)."""

    def __init__(self, cfg: CorpusConfig, bench: decontam.Benchmarks):
        from multiplt.corpus.signatures import Signer

        self.cfg, self.blocks = cfg, row_blocks(cfg, bench)
        self.signer = Signer(cfg.num_perm, cfg.shingle, cfg.near_threshold)
        self.files = {"read": 0, "syntax_error": 0}
        self.extracted = {"in": 0, "out": 0}  # every top-level function; those not too_deep
        self.extract_seconds, self.signature_seconds = 0.0, 0.0
        self.rows: list[dict] = []
        self.excluded: list[dict] = []

    def document(self, doc) -> None:
        start = time.perf_counter()
        self.files["read"] += 1
        found, dropped = extract.extract(doc)
        for row in [*found, *dropped]:
            row["source"] = self.cfg.source
        too_deep = sum(row["reason"] == extract.TOO_DEEP for row in dropped)
        self.files["syntax_error"] += len(dropped) - too_deep
        self.excluded.extend(dropped)
        self.extracted["in"] += len(found) + too_deep
        self.extracted["out"] += len(found)
        self.extract_seconds += time.perf_counter() - start
        for block in self.blocks:
            found = block.run(found, self.excluded)
        start = time.perf_counter()
        for row in found:
            self.signer.sign(row)
            del row["_node"], row["_src"]
        self.signature_seconds += time.perf_counter() - start
        self.rows.extend(found)

    def read(self, source, k: int, n: int, units: list[str] | None = None) -> None:
        """Reads the K-th of N slices of `units` (default: the source's listing now); with the
        config's `limit`, only its first `limit` documents, so the progress bar counts at most
        `limit` units."""
        units = (source.units() if units is None else units)[k::n]
        total = len(units) if self.cfg.limit is None else min(len(units), self.cfg.limit)
        for unit in progress(units, total=total, desc=f"corpus shard {k}/{n}", unit="file"):
            for doc in source.read(unit):
                if self.cfg.limit is not None and self.files["read"] >= self.cfg.limit:
                    return
                self.document(doc)

    def steps(self) -> list[dict]:
        steps = [{"name": "extracted", "reason": extract.TOO_DEEP, **self.extracted,
                  "seconds": self.extract_seconds}]
        return steps + [{"name": b.name, "reason": b.reason, **b.stats} for b in self.blocks]


def _log_step(k: int, n: int, step: dict) -> None:
    funnel = Funnel(f"corpus shard {k}/{n} {step['name']}")
    funnel.keep(step["out"])
    funnel.drop(step["reason"], step["in"] - step["out"])
    funnel.log(LOG)


def run_shard(cfg: CorpusConfig, k: int, n: int, require_input: bool = False) -> dict:
    folder = parts.shard_dir(cfg.out, k, n)
    finished = parts.done(folder)
    if finished is not None:
        if finished.get("fingerprint") != cfg.fingerprint():
            raise MultipltError(f"shard {k}/{n} under {cfg.out} was built with another config or "
                                f"other filter steps; use a fresh --out")
        LOG.info("corpus shard %d/%d: already done, skipped", k, n)
        return storage.read_json(storage.join(folder, "stats.json"))
    check_config(cfg.out, cfg)
    bench = decontam.load(cfg.benchmarks)
    # one shard has no other to agree with: it records its input with its parts (so an empty
    # corpus, refused below, writes nothing); of N > 1, the first to start records it now
    source, recorded = pin.open_input(cfg.source, cfg.out, record=n > 1)
    if n > 1:  # likewise the config: a shard of another config begun meanwhile is refused now
        claim_config(cfg.out, cfg)
    start = time.perf_counter()
    reader = ShardReader(cfg, bench)
    reader.read(source, k, n, recorded["units"])
    if require_input and reader.files["read"] == 0:
        raise MultipltError(f"--source {cfg.source} is an empty corpus: no documents to read")
    rows, excluded, steps = reader.rows, reader.excluded, reader.steps()
    for step in steps:
        _log_step(k, n, step)
    if cfg.typecheck:
        LOG.info("corpus shard %d/%d: type check of %d functions", k, n, len(rows))
        # verdicts of finished batches are kept beside the shard's parts: a killed build checks
        # only the batches it had not finished (the marker and parts still come last)
        block = TypeCheckFilter(cfg.typecheck_batch, cfg.workers, cfg.typecheck_timeout,
                                progress=_batch_progress(), saved=storage.join(folder, "typecheck"))
        rows = block.run(rows, excluded)
        steps.append({"name": block.name, "reason": block.reason, **block.stats})
        _log_step(k, n, steps[-1])
    files = reader.files
    stats = {"shard": [k, n], "source_revision": recorded["revision"], "input": recorded["digest"],
             "units": len(recorded["units"]), "files": files, "steps": steps,
             "signature_seconds": round(reader.signature_seconds, 3),
             "seconds": round(time.perf_counter() - start, 3)}
    if n == 1:
        pin.write(cfg.out, recorded)
    # a build of another config that began beside this one (both found no config) may have
    # recorded its own since: checked again before the parts, and before the marker
    claim_config(cfg.out, cfg)
    storage.write_parquet(storage.join(folder, "kept.parquet"), parts.frame(rows, parts.KEPT))
    storage.write_parquet(storage.join(folder, "excluded.parquet"), parts.frame(excluded, parts.EXCLUDED))
    storage.write_json(storage.join(folder, "stats.json"), stats, indent=2)
    claim_config(cfg.out, cfg)
    parts.finish(folder, {"fingerprint": cfg.fingerprint(), "kept": len(rows), "excluded": len(excluded)})
    LOG.info("corpus shard %d/%d: %s read, %d functions kept, %d rows excluded, %.1f s",
             k, n, documents(files["read"], getattr(source, "kind", None)), len(rows), len(excluded),
             stats["seconds"])
    return stats


#: what one document of a source is, by the source's `kind` (sources.py)
DOCUMENT_NOUNS = {"folder": ("file", "files"), "table": ("table row", "table rows")}


def documents(count: int, kind: str | None) -> str:
    """`11 files`, `4 table rows`, or (a source of another kind) `3 documents`."""
    one, many = DOCUMENT_NOUNS.get(kind, ("document", "documents"))
    return f"{count} {one if count == 1 else many}"
