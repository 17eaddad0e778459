"""One shard of a build: the K-th of N round-robin slices of the input units the build recorded
when it began (pin.py: one listing at one revision for every shard), extracted and passed
through every per-row filter; its kept rows get dedup signatures. Writes its parts, then its
completion marker; a shard whose marker exists is skipped. The type check keeps each finished
batch's verdicts under the shard's `typecheck/`, reused by a rerun."""

from __future__ import annotations

import contextlib
import logging
import time

from multiplt import storage
from multiplt.corpus import decontam, extract, filters, parts, pin
from multiplt.corpus.config import CorpusConfig
from multiplt.corpus.typecheck import TypeCheckFilter
from multiplt.errors import MultipltError
from multiplt import log
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


#: documents between two updates of the document count on a shard's progress bar
DOCUMENT_STEP = 1000


class ShardReader:
    """Reads the shard's documents and streams each one's functions through the row blocks.
    A table is read a batch of rows at a time (sources.read_table) and a row's `context` is
    built only once it has passed the row blocks (extract.fill_context), so a dropped row never
    holds one. Memory grows with the shard's rows, not with its input files: each survivor is a
    dict of its text, context and dedup signature (its parse tree shed once signed) until the
    parts are written; each excluded row is packed into columns (ExcludedRows)."""

    def __init__(self, cfg: CorpusConfig, bench: decontam.Benchmarks):
        from multiplt.corpus.signatures import Signer

        self.cfg, self.blocks = cfg, row_blocks(cfg, bench)
        self.signer = Signer(cfg.num_perm, cfg.shingle, cfg.near_threshold)
        self.files = {"read": 0, "syntax_error": 0}
        self.extracted = {"in": 0, "out": 0}  # every top-level function; those not too_deep
        self.extract_seconds, self.signature_seconds = 0.0, 0.0
        self.rows: list[dict] = []
        self.excluded = ExcludedRows()

    def document(self, doc) -> None:
        start = time.perf_counter()
        self.files["read"] += 1
        found, dropped = extract.extract(doc, lazy_context=True)
        for row in [*found, *dropped]:
            row["source"] = self.cfg.source
        too_deep = sum(row["reason"] == extract.TOO_DEEP for row in dropped)
        self.files["syntax_error"] += len(dropped) - too_deep
        self.excluded.extend(dropped)
        self.extracted["in"] += len(found) + too_deep
        self.extracted["out"] += len(found)
        self.extract_seconds += time.perf_counter() - start
        for block in self.blocks:  # none reads `context`: rows they drop keep it empty
            found = block.run(found, self.excluded)
        start = time.perf_counter()
        for row in found:
            extract.fill_context(row)
        self.extract_seconds += time.perf_counter() - start
        start = time.perf_counter()
        for row in found:
            self.signer.sign(row)
            del row["_node"], row["_src"]
        self.signature_seconds += time.perf_counter() - start
        self.rows.extend(found)

    def read(self, source, k: int, n: int, units: list[str] | None = None) -> None:
        """Reads the K-th of N slices of `units` (default: the source's listing now); with the
        config's `limit`, only its first `limit` documents, so the progress bar counts at most
        `limit` units, and a table stops being read at the limit. The bar counts units; where a
        unit holds many documents (a table's rows), the documents read so far show beside it
        (DocumentCount)."""
        units = (source.units() if units is None else units)[k::n]
        total = len(units) if self.cfg.limit is None else min(len(units), self.cfg.limit)
        bar = progress(units, total=total, desc=f"corpus shard {k}/{n}", unit="file")
        count = DocumentCount(bar)
        for unit in bar:
            if self.cfg.limit is not None and self.files["read"] >= self.cfg.limit:
                return  # the limit reached at a unit's end: the next one is not opened
            with contextlib.closing(source.read(unit)) as docs:
                for doc in docs:
                    if self.cfg.limit is not None and self.files["read"] >= self.cfg.limit:
                        count.stopped(self.files["read"])
                        return
                    self.document(doc)
                    count.read(self.files["read"])
            count.unit_done(self.files["read"])

    def steps(self) -> list[dict]:
        steps = [{"name": "extracted", "reason": extract.TOO_DEEP, **self.extracted,
                  "seconds": self.extract_seconds}]
        return steps + [{"name": b.name, "reason": b.reason, **b.stats} for b in self.blocks]


class DocumentCount:
    """The documents a shard has read, as the postfix of its progress bar (`documents=N`): the
    bar counts units, and one unit of a table may hold many rows (a parquet file of 100,000 rows
    would show 0/1 for minutes). Shown once a unit has given more than one document (a folder's
    units are its documents: no postfix there): every DOCUMENT_STEP documents, when a unit ends
    and when the --limit stops the reading. Off a terminal the bar prints a line only when its
    count moves (log.progress), so it is also redrawn while one unit is read, at most once every
    log.NON_TERMINAL_INTERVAL_S seconds, and once more at the limit (its final state)."""

    def __init__(self, bar):
        self.bar, self.unit_start, self.many, self.shown = bar, 0, False, time.monotonic()

    def read(self, documents: int) -> None:
        if documents % DOCUMENT_STEP == 0 and (self.many or documents - self.unit_start > 1):
            self.many = True
            self._show(documents)
            now = time.monotonic()
            if now - self.shown >= log.NON_TERMINAL_INTERVAL_S:
                self._redraw()
                self.shown = now

    def unit_done(self, documents: int) -> None:
        self.many = self.many or documents - self.unit_start > 1
        if self.many:
            self._show(documents)
        self.unit_start = documents

    def stopped(self, documents: int) -> None:
        """The --limit stopped the reading inside a unit: the bar's count does not move again."""
        self.unit_done(documents)
        if self.many:
            self._redraw()

    def _show(self, documents: int) -> None:
        set_postfix = getattr(self.bar, "set_postfix", None)
        if set_postfix is not None:  # a bar of log.progress (without tqdm: it ignores it)
            set_postfix(documents=str(documents))  # tqdm would write 100000 as 1e+5

    def _redraw(self) -> None:
        refresh = getattr(self.bar, "refresh", None)
        if refresh is not None:
            refresh()


class ExcludedRows:
    """A shard's excluded rows: appended as dicts (Block.run, the type check), packed into a
    polars frame of the excluded columns (parts.frame) every PACK_ROWS rows, so a row costs its
    text in columns rather than a dict of Python strings. `frame()` is every row in order, with
    the columns parts.frame gives the whole list."""

    PACK_ROWS = 10_000

    def __init__(self):
        self._frames: list = []
        self._rows: list[dict] = []
        self._count = 0

    def append(self, row: dict) -> None:
        self._rows.append(row)
        self._count += 1
        if len(self._rows) >= self.PACK_ROWS:
            self._pack()

    def extend(self, rows) -> None:
        for row in rows:
            self.append(row)

    def __len__(self) -> int:
        return self._count

    def __iter__(self):
        """Each row as a dict (a packed row has every column, None where it had none)."""
        for frame in self._frames:
            yield from frame.iter_rows(named=True)
        yield from self._rows

    def _pack(self) -> None:
        self._frames.append(parts.frame(self._rows, parts.EXCLUDED))
        self._rows = []

    def frame(self):
        import polars as pl

        if self._rows or not self._frames:
            self._pack()
        if len(self._frames) == 1:
            return self._frames[0]
        joined = pl.concat(self._frames, how="diagonal")
        fixed = list({**parts.BASE, **parts.EXCLUDED})
        return joined.select(fixed + sorted(set(joined.columns) - set(fixed)))


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
             "seconds": round(time.perf_counter() - start, 3),
             # what code made this shard's rows (the merge gathers every shard's into
             # corpus_config.json's shard_provenance: shards may run on other machines or images)
             "provenance": cfg.provenance()}
    if n == 1:
        pin.write(cfg.out, recorded)
    # a build of another config that began beside this one (both found no config) may have
    # recorded its own since: checked again before the parts, and before the marker
    claim_config(cfg.out, cfg)
    storage.write_parquet(storage.join(folder, "kept.parquet"), parts.frame(rows, parts.KEPT))
    storage.write_parquet(storage.join(folder, "excluded.parquet"), excluded.frame())
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
