"""`hf://datasets/OWNER/NAME[/DIR][@REVISION]`: the parquet/JSONL files of a Hub dataset, listed
and downloaded with huggingface_hub (HF_ENDPOINT, HF_TOKEN as usual). The revision is resolved
to a commit once, so every shard of a run reads the same files."""

from __future__ import annotations

from multiplt.corpus.sources import TABLE_SUFFIXES, TableSource
from multiplt.errors import MultipltError


def parse(spec: str) -> tuple[str, str, str | None]:
    """`hf://datasets/o/n/dir@rev` -> ("o/n", "dir", "rev")."""
    rest, _, revision = spec[len("hf://"):].partition("@")
    parts = [p for p in rest.split("/") if p]
    if len(parts) < 3 or parts[0] != "datasets":
        raise MultipltError(f"--source {spec!r}: a Hub source is hf://datasets/OWNER/NAME[/DIR][@REVISION]")
    return f"{parts[1]}/{parts[2]}", "/".join(parts[3:]), revision or None


def hub_source(spec: str) -> TableSource:
    try:
        from huggingface_hub import HfApi, hf_hub_download
    except ImportError:
        raise MultipltError("an hf:// source needs huggingface_hub (pip install 'multiplt[corpus]')") from None
    repo_id, folder, revision = parse(spec)
    api = HfApi()
    try:
        commit = api.dataset_info(repo_id, revision=revision).sha
        files = api.list_repo_files(repo_id, repo_type="dataset", revision=commit)
    except Exception as exc:  # noqa: BLE001 (not found, gated, offline: one clear message)
        raise MultipltError(f"--source {spec}: cannot list the Hub dataset {repo_id}: "
                            f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
    prefix = folder.rstrip("/") + "/" if folder else ""
    tables = {f[len(prefix):]: f for f in files if f.startswith(prefix) and f.endswith(TABLE_SUFFIXES)}
    if not tables:
        raise MultipltError(f"--source {spec} is an empty corpus: no .parquet or .jsonl files "
                            f"under {folder or 'the repository root'} at {commit}")

    def download(filename: str) -> str:
        return hf_hub_download(repo_id, filename, repo_type="dataset", revision=commit)

    source = TableSource(tables, spec, opener=download)
    source.revision = commit
    return source
