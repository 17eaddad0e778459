"""Find the datasets the chain made under a data root, for the Datasets page of the UI.

A dataset is a stage's output folder: it holds `funnel.json` and a folder of parquet files,

    functions/*.parquet            multiplt corpus     (DAG multiplt_corpus)
    tests/*.parquet                multiplt testgen    (DAG multiplt_testgen)
    data/<split>-*.parquet         multiplt translate  (DAG multiplt_translate), one dataset per split

beside `excluded/` (every dropped row with its `reason`) and the stage's resolved config
(`corpus_config.json`, `work/<shard>/config.json`, `config/<lang>-K-of-N.json`), which names
the model; without a config, the rows' `model` provenance column does. A shard's own
`funnel.json` in a work folder has no parquet folder beside it, so it is not a dataset.
`published.json` (written by `multiplt publish dataset`) names the Hub repo it went to.

One listing of the root finds every candidate; each dataset then reads its funnel, configs and
the parquet footers of its files. A dataset that cannot be read is listed with its `error`.
"""

from __future__ import annotations

import dataclasses
import io
import re

from multiplt.errors import MultipltError
from multiplt.results import funnel as funnel_mod

FUNNEL = "funnel.json"
PUBLISHED = "published.json"
#: data folder -> (kind, the DAG that writes it)
KINDS = {"functions": ("corpus", "multiplt_corpus"), "tests": ("tests", "multiplt_testgen"),
         "data": ("translation", "multiplt_translate")}
_SPLIT = re.compile(r"^(?P<split>[A-Za-z0-9_]+?)(-[^/]*)?\.parquet$")


@dataclasses.dataclass
class Dataset:
    uri: str                    # the stage's output folder
    kind: str                   # corpus | tests | translation
    dag_id: str
    split: str | None = None    # translation: the language's split (racket, lua, ...)
    lang: str | None = None     # translation: the language code
    files: list[str] = dataclasses.field(default_factory=list)
    bytes: int = 0
    rows: int | None = None
    model: str | None = None
    revision: str | None = None
    config_uri: str | None = None
    steps: list[dict] = dataclasses.field(default_factory=list)
    published: dict | None = None
    error: str | None = None

    @property
    def key(self) -> str:
        """Names the dataset in a URL: its folder, and the split for a translation."""
        return f"{self.uri}#{self.split}" if self.split else self.uri

    @property
    def title(self) -> str:
        name = self.uri.rstrip("/").rsplit("/", 1)[-1]
        return f"{self.kind} {self.split}" if self.split else f"{self.kind} ({name})"


def _parent(uri: str) -> str:
    return uri.rsplit("/", 1)[0]


def discover(root: str) -> list[Dataset]:
    """Every dataset below the folder `root` (file:// or s3://), sorted by folder and split."""
    from multiplt import storage

    try:
        infos = storage.listing(root)
    except MultipltError:
        raise
    except Exception as exc:  # noqa: BLE001 - an unreachable bucket or a bad URI
        raise MultipltError(f"cannot list the data root {root}: {exc}") from None
    sizes = {info.uri: info.size for info in infos}
    folders = sorted(_parent(u) for u in sizes if u.rsplit("/", 1)[-1] == FUNNEL)
    found: list[Dataset] = []
    for folder in folders:
        for sub, (kind, dag_id) in KINDS.items():
            prefix = f"{folder}/{sub}/"
            files = sorted(u for u in sizes if u.startswith(prefix) and "/" not in u[len(prefix):]
                           and u.endswith(".parquet"))
            if not files:
                continue
            if kind == "translation":
                found.extend(_splits(folder, files, sizes))
            else:
                found.append(Dataset(folder, kind, dag_id, files=files,
                                     bytes=sum(sizes[f] for f in files)))
    for dataset in found:
        try:
            _describe(dataset, sizes)
        except MultipltError as exc:
            dataset.error = str(exc)
    return found


def _splits(folder: str, files: list[str], sizes: dict) -> list[Dataset]:
    by_split: dict[str, list[str]] = {}
    for uri in files:
        match = _SPLIT.match(uri.rsplit("/", 1)[-1])
        if match:
            by_split.setdefault(match["split"], []).append(uri)
    return [Dataset(folder, "translation", KINDS["data"][1], split=split, lang=_code(split),
                    files=split_files, bytes=sum(sizes[f] for f in split_files))
            for split, split_files in sorted(by_split.items())]


def _code(split: str) -> str:
    from multiplt.languages import registry

    try:
        return registry.get(split).code
    except MultipltError:
        return split


def _describe(dataset: Dataset, sizes: dict) -> None:
    from multiplt import storage

    dataset.rows = sum(storage.parquet_rows(uri) for uri in dataset.files)
    raw = _read_json(storage.join(dataset.uri, FUNNEL))
    config_uri = _config_uri(dataset, sizes)
    config = _read_json(config_uri) if config_uri else {}
    dataset.config_uri = config_uri
    if dataset.kind == "translation":
        if dataset.lang not in raw:
            raise MultipltError(f"{dataset.uri}/{FUNNEL} has no funnel for language {dataset.lang!r}")
        steps = funnel_mod.translation_steps(raw[dataset.lang])
        run = config.get("run") or {}
        dataset.model = run.get("model") or config.get("model_label") or config.get("model")
        dataset.revision = run.get("revision") or config.get("revision")
        excluded_prefix = f"{dataset.uri}/excluded/excluded-{dataset.split}-"
    else:
        steps = funnel_mod.steps_of(raw, f"{dataset.uri}/{FUNNEL}")
        dataset.model = config.get("model") or (f"{config['backend']} backend"
                                                if config.get("backend") == "replay" else None)
        dataset.revision = config.get("revision")
        excluded_prefix = f"{dataset.uri}/excluded/"
    excluded = [u for u in sizes if u.startswith(excluded_prefix) and u.endswith(".parquet")
                and "/" not in u[len(f"{dataset.uri}/excluded/"):]]
    reasons = funnel_mod.reason_counts([_reason_rows(uri) for uri in sorted(excluded)])
    dataset.steps = funnel_mod.attach_reasons(steps, reasons)
    if not dataset.model:  # no config found: the provenance columns of the rows, if any
        dataset.model = ", ".join(_column_values(dataset.files, "model")) or None
    published_uri = storage.join(dataset.uri, PUBLISHED)
    if published_uri in sizes:
        dataset.published = _read_json(published_uri)


def _config_uri(dataset: Dataset, sizes: dict) -> str | None:
    """The resolved config written beside the output (the first shard's, for sharded stages)."""
    from multiplt import storage

    base = dataset.uri
    if dataset.kind == "corpus":
        candidates = [f"{base}/corpus_config.json"]
    elif dataset.kind == "tests":
        shards = storage.join(base, "work") + "/"  # testgen's per-shard folders (testgen/pipeline.py)
        candidates = sorted(u for u in sizes if u.startswith(shards) and u.endswith("/config.json")
                            and u.count("/") == base.count("/") + 3)
    else:
        candidates = sorted(u for u in sizes if u.startswith(f"{base}/config/{dataset.lang}-")
                            and u.endswith(".json"))
    return next((u for u in candidates if u in sizes), None)


def _read_json(uri: str):
    import json

    from multiplt import storage

    try:
        return storage.read_json(uri)
    except json.JSONDecodeError as exc:
        raise MultipltError(f"{uri} is not valid JSON: {exc}") from None


def _column_values(files: list[str], column: str) -> list[str]:
    """The distinct non-empty values of a column over parquet files that have it."""
    import polars as pl

    from multiplt import storage

    values: set[str] = set()
    for uri in files:
        path = storage.local_path(uri)
        source = path if path is not None else io.BytesIO(storage.read_bytes(uri))
        try:
            if column not in pl.read_parquet_schema(source):
                continue
            if not isinstance(source, str):
                source.seek(0)
            values.update(str(v) for v in pl.read_parquet(source, columns=[column])[column].unique() if v)
        except Exception as exc:  # noqa: BLE001 - polars raises several types for a bad file
            raise MultipltError(f"{uri} is not a readable parquet file: {exc}") from None
    return sorted(values)


def _reason_rows(uri: str) -> list[tuple[str | None, str]]:
    """(stage, reason) of every excluded row of one file (stage is None when there is none)."""
    import polars as pl

    from multiplt import storage

    path = storage.local_path(uri)
    try:
        data = path if path is not None else storage.read_bytes(uri)
        names = list(pl.read_parquet_schema(data if path else io.BytesIO(data)))
        if "reason" not in names:
            if pl.scan_parquet(data if path else io.BytesIO(data)).select(pl.len()).collect().item() == 0:
                return []  # an empty shard written without columns
            raise MultipltError(f"{uri} has no `reason` column (columns: {', '.join(names)})")
        table = pl.read_parquet(data if path else io.BytesIO(data),
                                columns=[c for c in ("stage", "reason") if c in names])
    except MultipltError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise MultipltError(f"{uri} is not a readable parquet file: {exc}") from None
    reasons = table["reason"].to_list()
    stages = table["stage"].to_list() if "stage" in names else [None] * len(reasons)
    return list(zip(stages, reasons))

