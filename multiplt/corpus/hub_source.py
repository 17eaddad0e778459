"""`hf://datasets/OWNER/NAME[/DIR][@REVISION]`: the parquet/JSONL files of a Hub dataset, listed
and downloaded with huggingface_hub (HF_ENDPOINT, HF_TOKEN as usual). The revision is resolved
to a commit, which the build records with the file list in `_work/input.json` (pin.py): every
later shard reopens the source at that commit (`revision=`), so all read the same files.

A Hub failure that can pass (no connection, a timeout, HTTP 408/429/5xx: the Hub's retry policy,
multiplt.hub.retry.is_retryable) is a PlatformError (exit 3: the DAG retries the task); any
other (not found, gated, no access, offline mode) is a MultipltError (exit 2)."""

from __future__ import annotations

from multiplt.corpus.sources import TABLE_SUFFIXES, TableSource
from multiplt.errors import MultipltError
from multiplt.hub.retry import hub_error


def parse(spec: str) -> tuple[str, str, str | None]:
    """`hf://datasets/o/n/dir@rev` -> ("o/n", "dir", "rev")."""
    rest, _, revision = spec[len("hf://"):].partition("@")
    parts = [p for p in rest.split("/") if p]
    if len(parts) < 3 or parts[0] != "datasets":
        raise MultipltError(f"--source {spec!r}: a Hub source is hf://datasets/OWNER/NAME[/DIR][@REVISION]")
    return f"{parts[1]}/{parts[2]}", "/".join(parts[3:]), revision or None


def hub_source(spec: str, revision: str | None = None) -> TableSource:
    """The source `spec` names; `revision` (a commit a build recorded) replaces the spec's."""
    try:
        from huggingface_hub import HfApi, hf_hub_download
    except ImportError:
        raise MultipltError("an hf:// source needs huggingface_hub (pip install 'multiplt[corpus]')") from None
    repo_id, folder, asked = parse(spec)
    api = HfApi()
    try:
        commit = api.dataset_info(repo_id, revision=revision or asked).sha
        files = api.list_repo_files(repo_id, repo_type="dataset", revision=commit)
    except Exception as exc:  # noqa: BLE001 (classified: hub_error)
        raise hub_error(f"--source {spec}: cannot list the Hub dataset {repo_id}", exc) from None
    prefix = folder.rstrip("/") + "/" if folder else ""
    tables = {f[len(prefix):]: f for f in files if f.startswith(prefix) and f.endswith(TABLE_SUFFIXES)}
    if not tables:
        raise MultipltError(f"--source {spec} is an empty corpus: no .parquet or .jsonl files "
                            f"under {folder or 'the repository root'} at {commit}")

    def download(filename: str) -> str:
        try:
            return hf_hub_download(repo_id, filename, repo_type="dataset", revision=commit)
        except Exception as exc:  # noqa: BLE001 (classified: hub_error)
            raise hub_error(f"--source {spec}: cannot download {filename} of {repo_id} at {commit}",
                            exc) from None

    source = TableSource(tables, spec, opener=download)
    source.revision = commit
    return source
