"""Training data: the text column of a dataset in storage (a parquet or JSONL file, or a folder
of them) or on the Hugging Face Hub, tokenized, split into train/held-out documents and packed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import pathlib

from multiplt.errors import MultipltError
from multiplt.log import Funnel, progress

LOG = logging.getLogger("multiplt.training")
DATA_SUFFIXES = (".parquet", ".jsonl", ".jsonl.gz")


@dataclasses.dataclass
class PackedData:
    train: "object"  # torch.LongTensor [n_train, seq_len]
    eval: "object"  # torch.LongTensor [n_eval, seq_len] (n_eval may be 0)
    n_documents: int
    n_tokens: int
    sha256: str  # of the packed training tokens: a resumed run must see the same data
    eval_documents: int = 0  # documents held out
    eval_documents_in_train: int = 0  # of them, those whose exact text is also a training document

    def describe(self) -> dict:
        return {"documents": self.n_documents, "tokens": self.n_tokens,
                "train_sequences": int(self.train.shape[0]), "eval_sequences": int(self.eval.shape[0]),
                "train_sha256": self.sha256, "eval_documents": self.eval_documents,
                "eval_documents_in_train": self.eval_documents_in_train}


def _is_local_path(ref: str) -> bool:
    """Spelled as a local path (`./d`, `../d`, `/d`, `~/d`, `.`): no Hub dataset name is."""
    return ref.startswith(("./", "../", "/", "~")) or ref in (".", "..")


def _is_storage_ref(ref: str) -> bool:
    return "://" in ref or ref.endswith(DATA_SUFFIXES) or os.path.exists(ref) or _is_local_path(ref)


def is_hub_dataset(ref: str) -> bool:
    """Whether `multiplt train` reads `ref` from the Hub (a dataset name), not from storage."""
    return not _is_storage_ref(ref)


def hub_dataset_commit(dataset: str, revision: str | None, split: str) -> str:
    """The commit that `revision` (None: the default branch) of the Hub dataset `dataset` is at
    now: the run loads the dataset at that commit and records it (`dataset_commit`). Only the
    repo's README.md is fetched; with HF_HUB_OFFLINE a revision that a load has put in the Hub
    cache resolves from there. Errors are one line: a Hub that does not answer (network, 408,
    429, 5xx) a PlatformError (exit 3: the stage runtime retries), anything else (unknown repo or
    revision, no access, offline and not cached) a MultipltError naming the dataset and split."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    from multiplt.errors import PlatformError
    from multiplt.hub.retry import describe, passing_cause

    try:
        path = snapshot_download(dataset, repo_type="dataset", revision=revision,
                                 allow_patterns=["README.md"])
    except RevisionNotFoundError:
        raise MultipltError(f"cannot load Hub dataset {dataset!r} split {split!r}: --dataset-revision "
                            f"{revision!r} not found on the Hub") from None
    except RepositoryNotFoundError as exc:  # a gated repo is one too: its message says why
        why = describe(exc) if isinstance(exc, GatedRepoError) else \
            "no such dataset on the Hub (nor a file or folder of that name here)"
        raise MultipltError(f"cannot load Hub dataset {dataset!r} split {split!r}: {why}") from None
    except Exception as exc:  # noqa: BLE001 - no access, offline and not cached, the network
        cause = passing_cause(exc)
        if cause is not None:
            raise PlatformError(f"cannot load Hub dataset {dataset!r} split {split!r} now (revision "
                                f"{revision!r}): the Hub did not answer ({describe(cause)}); try again "
                                f"later") from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MultipltError(f"cannot load Hub dataset {dataset!r} split {split!r}: {first}") from None
    return os.path.basename(os.path.normpath(path))


def storage_files(dataset: str, split: str) -> list[str] | None:
    """The data files `multiplt train` reads for `split` of a storage dataset (MultipltError when
    there are none), or None for a Hub dataset name."""
    return _storage_files(dataset, split) if _is_storage_ref(dataset) else None


def _storage_files(uri: str, split: str) -> list[str]:
    """The data files a storage URI names: the file itself, or the folder's files for `split`
    (`<split>.parquet`, `<split>-00000-of-00002.parquet`, also under `data/` as on the Hub)."""
    from multiplt import storage

    if uri.endswith(DATA_SUFFIXES):
        if not storage.exists(uri):
            raise MultipltError(f"dataset {uri} does not exist")
        return [uri]
    local = storage.local_path(uri)
    if local is not None and not os.path.exists(local):
        raise MultipltError(f"dataset {uri} does not exist")
    files = [u for u in storage.ls(uri, recursive=True) if u.endswith(DATA_SUFFIXES)]
    if not files:
        raise MultipltError(f"dataset {uri}: no {', '.join(DATA_SUFFIXES)} files found there")
    chosen = [u for u in files if storage.basename(u).split(".")[0].split("-")[0] == split]
    if not chosen:
        names = ", ".join(sorted({storage.basename(u) for u in files})[:10])
        raise MultipltError(f"dataset {uri}: no file for split {split!r} (expected {split}.parquet, "
                            f"{split}-*.parquet or {split}.jsonl[.gz]); found {names}")
    prefix = uri.rstrip("/") + "/"
    _refuse_missing_shards(uri, [u[len(prefix):] for u in chosen])
    return chosen


def _refuse_missing_shards(uri: str, names: list[str]) -> None:
    """MultipltError when the split's files (`names`, below the folder `uri`) are shards
    `<split>-K-of-N` of which some K has no file, as `publish dataset` refuses them: translate
    writes data/<split>-K-of-N.parquet once shard K is done, so the split would be part of the
    run's. The advice names the translate run when `uri` (or the folder above it) is one."""
    from multiplt.translation.writer import missing_flags, shard_gaps

    gaps = shard_gaps(names)
    if not gaps:
        return
    from multiplt import storage
    from multiplt.translation.pipeline import translate_output_file

    gap = gaps[0]
    folder, _, split = gap.prefix.rpartition("/")
    shown = ", ".join(gap.missing[:3]) + (" ..." if len(gap.missing) > 3 else "")
    root = uri.rstrip("/")
    runs = [root, root.rpartition("/")[0]] if storage.basename(root) == "data" else [root]
    out = next((r for r in runs if r and translate_output_file(r) is not None), None)
    advice = (f"its translate run has not finished: run shard(s) {missing_flags(gap)} first (`multiplt "
              f"translate --out {out} --shard K/N` with the run's other flags)" if out else
              "train once every shard is there")
    raise MultipltError(f"dataset {uri}{': ' + folder + '/' if folder else ''} holds {gap.held} of the "
                        f"{gap.n} shards of {split} (no {shown}); {advice}")


def _column(rows_or_df, column: str, source: str) -> list:
    if hasattr(rows_or_df, "columns"):  # polars DataFrame
        if column not in rows_or_df.columns:
            raise MultipltError(f"dataset {source} has no {column!r} column; columns: "
                                f"{', '.join(rows_or_df.columns)}")
        return rows_or_df[column].to_list()
    if rows_or_df and column not in rows_or_df[0]:
        raise MultipltError(f"dataset {source} has no {column!r} field; fields: "
                            f"{', '.join(rows_or_df[0])}")
    return [row.get(column) for row in rows_or_df]


def _check_loaded_commit(ds, dataset: str, split: str, revision: str | None) -> None:
    """MultipltError when `datasets` gave rows of another version than `revision` (a commit):
    offline (HF_HUB_OFFLINE) it ignores the revision and loads the newest version it cached, so
    a run that records `dataset_commit` would train on other rows. Its cache keeps a Hub
    dataset's files under a folder named by the commit they came from."""
    if not revision:
        return
    files = [f.get("filename", "") for f in getattr(ds, "cache_files", None) or []]
    if files and not all(revision in pathlib.PurePath(name).parts for name in files):
        raise MultipltError(f"cannot load Hub dataset {dataset!r} split {split!r} at {revision}: "
                            f"the `datasets` cache holds another version of it ({files[0]}), which "
                            "it loads when the Hub is offline; load it once with the Hub "
                            "reachable, or unset HF_HUB_OFFLINE")


def load_texts(dataset: str, split: str, column: str = "content", revision: str | None = None) -> list:
    """The raw values of `column` (not yet checked) from storage or the Hub; a Hub dataset at
    `revision` (training passes the commit hub_dataset_commit resolved) or its default branch."""
    if _is_storage_ref(dataset):
        from multiplt import storage

        values = []
        for uri in _storage_files(dataset, split):
            table = storage.read_parquet(uri) if uri.endswith(".parquet") else storage.read_jsonl(uri)
            values.extend(_column(table, column, uri))
        LOG.info("read %d rows from %s (split %s)", len(values), dataset, split)
        return values
    try:
        import datasets
    except ImportError:
        raise MultipltError(f"dataset {dataset!r} is not in storage and the `datasets` package "
                            "(extra `train`) is not installed to load it from the Hub") from None
    try:
        ds = datasets.load_dataset(dataset, split=split, **({"revision": revision} if revision else {}))
    except Exception as exc:  # offline, unknown name or split: one clear message
        raise MultipltError(f"cannot load Hub dataset {dataset!r} split {split!r}: {exc}") from None
    _check_loaded_commit(ds, dataset, split, revision)
    if column not in ds.column_names:
        raise MultipltError(f"Hub dataset {dataset!r} has no {column!r} column; columns: "
                            f"{', '.join(ds.column_names)}")
    LOG.info("loaded %d rows of %s split %s from the Hub%s", len(ds), dataset, split,
             f" at {revision}" if revision else "")
    return ds[column]


#: what tokenize() asks the tokenizer about its special tokens (any short text would do)
PROBE = "def f(x):\n    return x\n"


def special_layout(tokenizer) -> tuple[list[int], list[int]]:
    """(the ids the tokenizer appends after a text, what tokenize() keeps of them). As
    MultiPL-T's training harness (its ConstantLengthDataset calls `tokenizer(text)` with the
    defaults, then appends EOS), a document is tokenized with the tokenizer's default special
    tokens: a BOS in front for the tokenizers that add one (Llama, CodeLlama: `<s> doc </s> <s>
    doc </s>` once packed), nothing for StarCoder's. An EOS the tokenizer would append too
    (add_eos_token) is dropped, as generation's encode_prompt drops it (both use
    models.tokenizer.split_specials): packing puts one EOS after each document. The layout is
    read once from a probe text; a tokenizer that adds nothing gives ([], [])."""
    from multiplt.models.tokenizer import split_specials

    ids = tokenizer([PROBE])["input_ids"][0]
    plain = tokenizer([PROBE], add_special_tokens=False)["input_ids"][0]
    _, tail, kept = split_specials(ids, plain, tokenizer.eos_token_id)
    return tail, kept


def usable(texts: list, funnel: Funnel | None = None) -> list[str]:
    """The documents that are trained on: the non-empty strings, in order (`funnel` counts the
    others)."""
    docs = []
    for value in texts:
        if not isinstance(value, str):
            if funnel is not None:
                funnel.drop("not a string")
        elif not value.strip():
            if funnel is not None:
                funnel.drop("empty")
        else:
            docs.append(value)
    return docs


def eval_in_train(docs: list[str], train_idx: list[int], eval_idx: list[int]) -> int:
    """How many held-out documents have the exact text of a training document (the split is by
    document, so a text that occurs twice in the data can fall on both sides)."""
    train = {docs[i] for i in train_idx}
    return sum(docs[i] in train for i in eval_idx)


def tokenize(docs: list[str], tokenizer, batch: int = 1000) -> list[list[int]]:
    """Token ids per document (`usable`'s), with the tokenizer's default special tokens but no
    EOS it appends (special_layout; packing adds the EOS)."""
    tail, kept = special_layout(tokenizer) if docs else ([], [])
    out: list[list[int]] = []
    bar = progress(total=len(docs), desc="tokenize", unit="doc")
    for start in range(0, len(docs), batch):
        chunk = docs[start:start + batch]
        # lists, as special_layout's tail and kept are (a tokenizer may give tuples)
        ids = [x if isinstance(x, list) else list(x) for x in tokenizer(chunk)["input_ids"]]
        if tail != kept:
            ids = [x[:len(x) - len(tail)] + kept if x[len(x) - len(tail):] == tail else x for x in ids]
        out.extend(ids)
        bar.update(len(chunk))
    bar.close()
    return out


def describe(dataset: str, split: str) -> str:
    """How errors name the data `load_texts(dataset, split)` read: a data file by its URI, a
    folder or Hub dataset with the split."""
    if dataset.endswith(DATA_SUFFIXES):
        return f"dataset {dataset}"
    return f"dataset {dataset} (split {split})"


def prepare(texts: list, tokenizer, seq_len: int, eval_fraction: float, seed: int,
            source: str = "the dataset") -> PackedData:
    """Tokenize, hold out documents for evaluation, and pack both sides to `seq_len`; errors
    about the data name it as `source` (see `describe`)."""
    from multiplt.training.packing import pack, split_documents

    if tokenizer.eos_token_id is None:
        raise MultipltError("the tokenizer has no EOS token to separate packed documents")
    funnel = Funnel("train data")
    docs = usable(texts, funnel)
    ids = tokenize(docs, tokenizer)
    funnel.keep(len(ids))
    funnel.log(LOG)
    if not ids:
        why = "it has no rows" if not texts else f"none of its {len(texts)} rows is a non-empty string"
        raise MultipltError(f"{source} has no usable documents: {why}")
    train_idx, eval_idx = split_documents(len(ids), eval_fraction, seed)
    in_train = eval_in_train(docs, train_idx, eval_idx)
    if in_train:
        LOG.warning("%d of the %d held-out documents are exact duplicates of training documents: "
                    "the eval loss is partly measured on text the model trains on", in_train,
                    len(eval_idx))
    elif eval_idx:
        LOG.info("none of the %d held-out documents is a duplicate of a training document",
                 len(eval_idx))
    train, dropped = pack((ids[i] for i in train_idx), tokenizer.eos_token_id, seq_len)
    evals, eval_dropped = pack((ids[i] for i in eval_idx), tokenizer.eos_token_id, seq_len)
    n_tokens = sum(len(x) + 1 for x in ids)
    LOG.info("packed %d documents (%d tokens with EOS) into %d training and %d held-out sequences "
             "of %d tokens; %d + %d tail tokens dropped", len(ids), n_tokens, train.shape[0],
             evals.shape[0], seq_len, dropped, eval_dropped)
    if train.shape[0] == 0:
        raise MultipltError(f"{source} is too small: its {n_tokens} tokens fill no "
                            f"{seq_len}-token training sequence")
    if eval_fraction > 0 and evals.shape[0] == 0:
        LOG.warning("eval loss skipped: the held-out %.2f%% (%d documents) is shorter than one "
                    "%d-token sequence", 100 * eval_fraction, len(eval_idx), seq_len)
    digest = hashlib.sha256(train.numpy().tobytes()).hexdigest()
    return PackedData(train, evals, len(ids), n_tokens, digest, len(eval_idx), in_train)
