"""Where model weights come from: a Hub name (+ revision), a local folder, or a storage URI.

- `revision` may also be a checkpoint tag of a training output (`LANG-EXPERIMENT-epochN`): when
  `multiplt.storage.manifest.resolve(model, revision)` knows it, the checkpoint URI it returns
  is loaded instead. `checkpoint_of` gives that checkpoint's manifest row also for a checkpoint
  loaded by its folder (`OUT/checkpoints/TAG`), so that a run is labelled with its epoch and
  experiment however the checkpoint was named.
- `s3://` folders are downloaded once into the local cache, keyed by URI and the objects'
  ETags, so a changed checkpoint is fetched again and an unchanged one never is.
- `file://` URIs and local folders are used in place.
- Hub names are fetched with `snapshot_download`, which also gives the resolved commit; for a
  tokenizer (`what="tokenizer"`) only its tokenizer and config files (TOKENIZER_PATTERNS), not
  the model's weights, at its own revision (`--tokenizer-revision`: check_tokenizer_revision).

A model (not a tokenizer) must hold a `config.json`; without one the folder holds no model,
and that is the error, before transformers tries to load it. A Hub repo whose commit holds none
(an empty repo: only `.gitattributes`, or an upload still under way) is named with its commit.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import logging
import os
import shutil
import tempfile

from multiplt import storage
from multiplt.errors import MultipltError, PlatformError
from multiplt.storage import manifest
from multiplt.storage import uri as storage_uri

LOG = logging.getLogger("multiplt.generation")
HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken"]
#: a tokenizer's files (`--tokenizer NAME`): its tokenizer and config files (tokenizer.json,
#: tokenizer_config.json, config.json, special_tokens_map.json, vocab.json, merges.txt,
#: vocab.txt, a sentencepiece *.model, *.tiktoken), never the weights
TOKENIZER_PATTERNS = ["*.json", "*.txt", "*.model", "*.tiktoken", "*.vocab", "*.bpe",
                      "merges*", "vocab*"]
#: the files of a model folder its content digest reads (content_digest), at the folder's top
#: level, where transformers and vLLM load them from: the config, generation config, tokenizer
#: files and weight index files whole (WHOLE), and each weights file (WEIGHTS) by its size, its
#: safetensors header and its first and last MiB (EDGE); any other file (a README, training's
#: _multiplt_train.yaml) is no part of it
WHOLE = ("*.json", "*.txt", "*.model", "*.tiktoken")
WEIGHTS = ("*.safetensors", "*.bin")
EDGE = 1 << 20
#: a safetensors header longer than this is no header (a corrupt file): its first MiB stands for it
MAX_HEADER = 100 << 20


@dataclasses.dataclass
class ResolvedModel:
    requested: str  # what the user asked for
    revision: str | None  # what the user asked for
    path: str  # local folder to load from
    resolved_commit: str | None = None  # Hub commit, or ETag digest for storage URIs
    checkpoint_uri: str | None = None  # set when `revision` was a training-manifest tag


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A checkpoint of a training output, as its manifest row describes it."""

    out: str  # the training output, as given (`--model OUT`, or the folder above checkpoints/)
    tag: str  # LANG-EXPERIMENT-epochN
    uri: str  # the checkpoint folder: the manifest row's (`--revision TAG`), or `--model` as given
    epoch: int
    experiment: str


def checkpoint_of(model: str | None, revision: str | None) -> Checkpoint | None:
    """The checkpoint that `model` (and `revision`) name, from its training output's manifest
    row: `--model OUT --revision TAG` (an unknown tag of a training output is an error naming its
    tags, as manifest.row says), or `--model OUT/checkpoints/TAG` without a revision, where
    training writes TAG's checkpoint, when OUT's manifest lists TAG (a copied or moved output
    whose rows name the old place counts too: the tag and the layout say which checkpoint it
    is). None for anything else: a Hub name, a plain model folder, a checkpoint folder whose
    output has no manifest row for it (one still being written is not in the manifest yet)."""
    if not model:
        return None
    if revision:
        row = manifest.row(model, revision)
        if row is None:
            return None
        return Checkpoint(model, revision, row["uri"], row["epoch"], row["experiment"])
    parent, _, tag = model.rstrip("/").rpartition("/")
    if not tag or parent.rpartition("/")[2] != "checkpoints":
        return None
    out = parent[:-len("checkpoints")].rstrip("/") or ("/" if parent.startswith("/") else ".")
    row = manifest.row(out, tag, unknown_ok=True)
    if row is None:
        return None
    return Checkpoint(out, tag, model, row["epoch"], row["experiment"])


def cache_root() -> str:
    return os.environ.get("MULTIPLT_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "multiplt")


def resolve_model(model: str, revision: str | None = None, what: str = "model",
                  hub: bool = True) -> ResolvedModel | None:
    """Where to load `model` from; `what="tokenizer"` for a tokenizer (no config.json needed;
    any other `what`, e.g. "base model", names a model in the errors). `hub=False`: a Hub name
    is not downloaded and None is returned (the caller loads it by name); everything else is
    resolved and checked as with `hub=True`. Errors about `revision` name the flag that gave it:
    `--base-revision` for train's base model (`what="base model"`), else `--revision`."""
    resolved = _resolve(model, revision, what, hub)
    if resolved is None:
        return None
    if what != "tokenizer" and not os.path.isfile(os.path.join(resolved.path, "config.json")):
        raise MultipltError(f"{model} holds no model: no config.json in {resolved.path}")
    return resolved


def content_digest(path: str, whole: tuple[str, ...] = WHOLE,
                   weights: tuple[str, ...] = WEIGHTS) -> str:
    """`sha256:<hex>`, a digest of what a local model folder holds, cheap on a large checkpoint:
    the sha256 of the JSON list [name, size, sha256 of the bytes read] of each top-level file
    matching WHOLE (read whole: config.json, generation_config.json, the tokenizer files, a
    weights index) or WEIGHTS (a weights file of at most 2 MiB is read whole; a larger one, its
    safetensors header (the 8-byte length and the JSON header of every tensor's name, dtype,
    shape and offsets) and its first and last MiB: a `.bin` file's last MiB holds its zip
    directory with each tensor's CRC-32), in name order. Two folders of the same files (a copy,
    a storage URI's downloaded copy) have the same digest; retrained or swapped weights, another
    config or tokenizer change it. Weights changed only in the middle of a large file whose size,
    header and edges stay the same are not seen (training changes every tensor). `whole` and
    `weights`: the name patterns of the files read whole and of the weights files
    (tokenizer_digest reads a tokenizer's files only)."""
    entries = []
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        read_whole = any(fnmatch.fnmatch(name, p) for p in whole)
        if not (read_whole or any(fnmatch.fnmatch(name, p) for p in weights)) or not os.path.isfile(full):
            continue
        digest = hashlib.sha256()
        with open(full, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if read_whole or size <= 2 * EDGE:
                for block in iter(lambda: f.read(EDGE), b""):
                    digest.update(block)
            else:
                head = f.read(8)
                length = int.from_bytes(head, "little") if len(head) == 8 else 0
                header_end = 8 + length if name.endswith(".safetensors") and 8 + length <= min(
                    size, MAX_HEADER) else 0
                f.seek(0)
                digest.update(f.read(max(EDGE, header_end)))
                f.seek(size - EDGE)
                digest.update(f.read(EDGE))
        entries.append([name, size, digest.hexdigest()])
    return "sha256:" + hashlib.sha256(json.dumps(entries).encode()).hexdigest()


def hub_commit(name: str, revision: str | None) -> str | None:
    """The commit `revision` (None: the default branch) of the Hub model (or tokenizer) repo `name`
    is at now, asked of the Hub without downloading anything; None when the Hub cannot say
    (offline, not found, no access: loading the model or tokenizer says why)."""
    from huggingface_hub import HfApi

    try:
        commit = HfApi().model_info(name, revision=revision).sha
    except Exception as exc:  # noqa: BLE001 - any failure: the download's own error says more
        LOG.debug("cannot ask the Hub for the commit of %s at %r: %s", name, revision, exc)
        return None
    return commit if isinstance(commit, str) and commit else None


def model_identity(model: str, revision: str | None = None, ask_hub: bool = False) -> str | None:
    """What `model` (at `revision`) holds now, as generate's run record keeps it in
    `model_identity`, found before its weights load: a local folder, a storage URI (downloaded
    into the cache, as the backend then finds it) or a training checkpoint has its
    content_digest (`sha256:<hex>`); a Hub model the commit its revision is at (`commit:<sha>`,
    hub_commit) when `ask_hub`, else None (the backend that loads it says which commit it
    loaded: `resolved_commit`), as when the Hub cannot say. Bad input is resolve_model's error."""
    ref = resolve_model(model, revision, hub=False)
    if ref is not None:
        return content_digest(ref.path)
    commit = hub_commit(model, revision) if ask_hub else None
    return None if commit is None else "commit:" + commit


def tokenizer_digest(path: str) -> str:
    """`sha256:<hex>`, content_digest of a local tokenizer folder's tokenizer files: its top-level
    files matching TOKENIZER_PATTERNS (the files a Hub `--tokenizer` is fetched with:
    tokenizer.json, tokenizer_config.json, special_tokens_map.json, config.json, vocab and merges
    files, a sentencepiece *.model, *.tiktoken), each read whole; weights and any other file (a
    README) are no part of it, so a model folder given as `--tokenizer` is not read whole."""
    return content_digest(path, tuple(TOKENIZER_PATTERNS), ())


def tokenizer_identity(tokenizer: str, revision: str | None = None,
                       ask_hub: bool = False) -> str | None:
    """What the `--tokenizer` `tokenizer` (at `revision`, --tokenizer-revision) holds now, as
    generate's run record keeps it in `tokenizer_identity`, found before it loads: a local
    folder or a storage URI (downloaded into the cache, as the backend then finds it) has its
    tokenizer_digest (`sha256:<hex>`); a Hub tokenizer the commit its revision is at
    (`commit:<sha>`, hub_commit) when `ask_hub`, else None (the backend that loads it says which
    commit it loaded: `tokenizer_resolved_commit`), as when the Hub cannot say. Bad input is
    resolve_model's error."""
    ref = resolve_model(tokenizer, revision, what="tokenizer", hub=False)
    if ref is not None:
        return tokenizer_digest(ref.path)
    commit = hub_commit(tokenizer, revision) if ask_hub else None
    return None if commit is None else "commit:" + commit


def _revision_flag(what: str) -> str:
    """The flag that gave the revision of `what`: train's base model and generate's tokenizer
    have their own."""
    return {"base model": "--base-revision", "tokenizer": "--tokenizer-revision"}.get(what, "--revision")


def tokenizer_revision_problem(tokenizer: str | None, revision: str | None) -> str | None:
    """Why `revision` (a tokenizer's revision) cannot apply, or None when it can: "empty" (a
    blank revision), "no tokenizer" (a revision names one of a Hub tokenizer's revisions, and
    without a tokenizer the model's own is loaded at the model's revision) or "not on the Hub"
    (a storage URI, a local path: absolute, `.`-relative, or anything that exists here, or a
    mistyped URI has no Hub revisions). check_tokenizer_revision words it in generate's flags,
    the DAG's check (multiplt_pipelines.checks) in a rerun_models entry's keys."""
    if revision is None:
        return None
    if not revision.strip():
        return "empty"
    if not tokenizer:
        return "no tokenizer"
    if ("://" in tokenizer or tokenizer.startswith((".", "/")) or os.path.exists(tokenizer)
            or storage_uri.mistyped(tokenizer) is not None):
        return "not on the Hub"
    return None


def check_tokenizer_revision(tokenizer: str | None, revision: str | None) -> None:
    """MultipltError unless `revision` (--tokenizer-revision) can apply to --tokenizer
    (tokenizer_revision_problem)."""
    problem = tokenizer_revision_problem(tokenizer, revision)
    if problem == "empty":
        raise MultipltError("--tokenizer-revision is empty; give a Hub branch, tag or commit, or "
                            "leave it out")
    if problem == "no tokenizer":
        raise MultipltError(f"--tokenizer-revision {revision!r} needs --tokenizer (a Hub tokenizer); "
                            "the model's own tokenizer is loaded at --revision")
    if problem == "not on the Hub":
        raise MultipltError(f"--tokenizer-revision {revision!r} is for a Hub tokenizer; --tokenizer "
                            f"{tokenizer!r} is a local path or storage URI, which has no revisions")


def _resolve(model: str, revision: str | None, what: str, hub: bool = True) -> ResolvedModel | None:
    checkpoint = manifest.resolve(model, revision)
    source = checkpoint or model
    if "://" in source:
        if checkpoint is None and revision:
            raise MultipltError(f"{_revision_flag(what)} {revision!r} is not a checkpoint tag of {model} "
                                "(a storage URI has no Hub revisions)")
        path, digest = _from_storage(source, what)
        return ResolvedModel(model, revision, path, digest, checkpoint)
    if os.path.isdir(source):
        if revision and checkpoint is None:
            raise MultipltError(f"{_revision_flag(what)} {revision!r} given for the local folder {model}, "
                                "which has no revisions or training manifest tag of that name")
        return ResolvedModel(model, revision, os.path.abspath(source), None, checkpoint)
    if checkpoint is not None:
        raise MultipltError(f"{what} {model} revision {revision!r}: its manifest names the checkpoint "
                            f"{checkpoint}, which is not a folder (removed or moved?)")
    meant = storage_uri.mistyped(model)
    if meant is not None:
        raise MultipltError(f"{what} {model!r} reads as a mistyped URI (did you mean {meant!r}?)")
    if os.path.exists(source) or source.startswith((".", "/")):
        raise MultipltError(f"{what} {model!r} is not a model folder")
    return _from_hub(model, revision, what) if hub else None


def _from_hub(name: str, revision: str | None, what: str = "model") -> ResolvedModel:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        if what == "tokenizer":  # a tokenizer's files only: not the weights of its repo's model
            path = snapshot_download(name, revision=revision, allow_patterns=TOKENIZER_PATTERNS)
        else:
            path = snapshot_download(name, revision=revision, allow_patterns=HUB_PATTERNS)
            # (an empty repo's snapshot folder does not exist: no listing before config.json)
            if os.path.exists(os.path.join(path, "config.json")) and not any(
                    f.endswith(".safetensors") for f in os.listdir(path)):
                path = snapshot_download(name, revision=revision,
                                         allow_patterns=HUB_PATTERNS + ["*.bin"])
    except RevisionNotFoundError:
        raise MultipltError(f"{what} {name}: revision {revision!r} not found on the Hub") from None
    except RepositoryNotFoundError:
        raise MultipltError(f"{what} {name!r} not found on the Hub (nor a local folder or URI)") from None
    except (HfHubHTTPError, OSError, ValueError) as exc:
        # no connection, a timeout, HTTP 408/429/5xx: PlatformError (exit 3, the stage runtime
        # retries); anything else (no access, offline mode, a bad name) is the input's (exit 2)
        from multiplt.hub.retry import describe, passing_cause

        cause = passing_cause(exc)
        if cause is not None:
            raise PlatformError(f"{what} {name!r} cannot be downloaded from the Hub now (revision "
                                f"{revision!r}): the Hub did not answer ({describe(cause)}); try again "
                                f"later") from None
        raise MultipltError(f"{what} {name!r} is not a local folder or storage URI, and cannot be downloaded from "
                            f"the Hub (revision {revision!r}): {exc}") from None
    commit = os.path.basename(os.path.normpath(path))
    if what != "tokenizer" and not os.path.isfile(os.path.join(path, "config.json")):
        raise MultipltError(no_config(what, name, commit))
    if what == "tokenizer" and not (os.path.isdir(path) and os.listdir(path)):
        raise MultipltError(f"tokenizer {name} at commit {commit} has no tokenizer files (an empty repo: "
                            f"still uploading?)")
    return ResolvedModel(name, revision, path, commit if len(commit) == 40 else None)


def no_config(what: str, name: str, commit: str) -> str:
    """The error for a Hub repo whose commit holds no config.json (an empty repo, or one whose
    upload has not reached the model yet)."""
    return f"{what} {name} at commit {commit} has no config.json (no weights yet: still uploading?)"


def hub_config_problem(name: str, revision: str | None, what: str = "model") -> str | None:
    """no_config's error when the Hub repo `name` at `revision` holds no config.json, else None
    (it holds one, or the Hub cannot say: the caller's own error stands). For a model that
    failed to load by its Hub name (train's base model, which from_pretrained fetches itself):
    only config.json is fetched, which from_pretrained fetched already when there is one."""
    from huggingface_hub import snapshot_download

    try:
        path = snapshot_download(name, revision=revision, allow_patterns=["config.json"])
    except Exception as exc:  # noqa: BLE001 - any failure: the loading error says more
        LOG.debug("cannot look for config.json of %s at %r: %s", name, revision, exc)
        return None
    if os.path.isfile(os.path.join(path, "config.json")):
        return None
    return no_config(what, name, os.path.basename(os.path.normpath(path)))


def _fingerprint(uri: str) -> list:
    """[relative name, size, ETag] of every file below the folder `uri`."""
    prefix = uri.rstrip("/") + "/"
    out = [[f.uri[len(prefix):], f.size, f.etag] for f in storage.listing(uri)]
    if not out and storage.exists(uri):
        raise MultipltError(f"{uri} is a file, not a model folder")
    return out


def _from_storage(uri: str, what: str) -> tuple[str, str | None]:
    path = storage.local_path(uri)
    if path is not None:
        if not os.path.isdir(path):
            raise MultipltError(f"{what} {uri} is not a folder")
        return path, None
    files = _fingerprint(uri)
    if not files:
        raise MultipltError(f"{uri} holds no files (no {what} there)")
    if what != "tokenizer" and not any(f[0] == "config.json" for f in files):
        raise MultipltError(f"{uri} holds no model: no config.json in it")  # before downloading
    digest = hashlib.sha256(json.dumps(files).encode()).hexdigest()
    target = os.path.join(cache_root(), "models",
                          hashlib.sha256(uri.encode()).hexdigest()[:16] + "-" + digest[:16])
    if os.path.exists(os.path.join(target, ".complete")):
        LOG.info("model %s: using cached copy %s", uri, target)
        return target, digest
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".download-", dir=os.path.dirname(target))
    try:
        LOG.info("model %s: downloading %d files", uri, len(files))
        storage.download_dir(uri, tmp)
        open(os.path.join(tmp, ".complete"), "w").close()
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished the same download first
            if not os.path.exists(os.path.join(target, ".complete")):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target, digest
