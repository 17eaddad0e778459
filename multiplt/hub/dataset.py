"""`multiplt publish dataset`: a folder of `data/<split>-*.parquet` (the translate stage's
output, or any such folder) becomes a Hub dataset with one split per language and a card.

The file prefix is the split: a language code (`rkt`) is published under the language's split
name (`racket`, as nuprl/MultiPL-T). A split whose files hold no row is not published (the card
names it), and files `<prefix>-K-of-N` of which some K is missing are refused. Provenance for the
card comes from the folder itself (its `funnel*.json`, `_multiplt_*.yaml`, `config/*.json` and
testgen's `work/<shard>/config.json`) and from the input folders its configs name (the stages
that made it), followed up to three stages back; the card names every folder by its public name
NAME~HASH (results.place_name), never by where it is kept.

A repo (a branch) holds one source folder's dataset: its card names the source (source_name),
and a publication of another folder there is refused before anything is sent (check_source)
unless `force`; the same folder again is an update. After a publication (not a dry run) the
folder gets `published.json`: repo, revision, commit and URL.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile

from multiplt.errors import MultipltError
from multiplt.hub import cards
from multiplt.hub.bundle import Bundle

LOG = logging.getLogger("multiplt.hub")
FILE_RE = re.compile(r"^(?P<split>[A-Za-z0-9_]+?)(?P<rest>(-[^/]*)?)\.parquet$")
PROVENANCE_DEPTH = 3


def split_name(prefix: str) -> str:
    from multiplt.languages import registry

    try:
        return registry.get(prefix).name
    except MultipltError:
        return prefix


def _local_data(uri: str, workdir: str) -> str:
    """A local folder holding the dataset's data/ files (downloaded when not local)."""
    from multiplt import storage

    path = storage.local_path(uri)
    if path is not None:
        return os.path.join(path, "data")
    local = os.path.join(workdir, "data")
    storage.download_dir(storage.join(uri, "data"), local)
    return local


def _data_files(uri: str) -> list[str]:
    from multiplt import storage

    try:
        names = [storage.basename(u) for u in storage.ls(storage.join(uri, "data")) if not u.endswith("/")]
    except MultipltError:
        raise
    except Exception as exc:  # noqa: BLE001 - a bad URI or an unreachable bucket
        raise MultipltError(f"cannot list {uri}/data: {exc}") from None
    files = sorted(n for n in names if n.endswith(".parquet"))
    if not files:
        raise MultipltError(f"--from {uri} is not a dataset folder: it has no data/<split>-*.parquet "
                            f"files (the translate stage writes them)")
    return files


def split_rows(local: str, files: list[str]) -> tuple[dict[str, list[tuple[str, str]]], dict, dict]:
    """({split: [(repo path, local path)]}, {split: rows}, {column: dtype}) of the files in the
    local data folder; checks every file is parquet with a `content` column."""
    import polars as pl

    splits: dict[str, list[tuple[str, str]]] = {}
    rows: dict[str, int] = {}
    schema: dict | None = None
    for name in files:
        match = FILE_RE.match(name)
        if not match:
            raise MultipltError(f"data/{name}: not named <split>-*.parquet")
        path = os.path.join(local, name)
        try:
            frame_schema = pl.read_parquet_schema(path)
            count = pl.scan_parquet(path).select(pl.len()).collect().item()
        except Exception as exc:  # noqa: BLE001 - polars raises several types for a bad file
            raise MultipltError(f"data/{name} is not a readable parquet file: {exc}") from None
        if "content" not in frame_schema:
            raise MultipltError(f"data/{name} has no `content` column (columns: "
                                f"{', '.join(frame_schema)}); a MultiPL-T dataset needs one")
        schema = schema or {k: str(v) for k, v in frame_schema.items()}
        split = split_name(match["split"])
        splits.setdefault(split, []).append((f"data/{split}{match['rest']}.parquet", path))
        rows[split] = rows.get(split, 0) + int(count)
    return splits, rows, schema or {}


def _read_config(uri: str):
    import yaml

    from multiplt import storage

    text = storage.read_text(uri)
    return json.loads(text) if uri.endswith(".json") else (yaml.safe_load(text) or {})


def _is_location(value) -> bool:
    return isinstance(value, str) and ("://" in value or value.startswith("/"))


def _parent(uri: str) -> str | None:
    """The folder holding `uri` (None above a bucket or the file system's root)."""
    uri = uri.rstrip("/")
    head = uri.rsplit("/", 1)[0]
    return None if head == uri or re.fullmatch(r"([A-Za-z][A-Za-z0-9+.-]*:)?/*", head) else head


def _stage(uri: str) -> dict | None:
    """{"uri", "funnels", "configs"} of one folder, None where it holds none of those files.
    Configs: `_multiplt_*.yaml`, `config/*.json|yaml` (translate: one per language and shard)
    and `work/*/config.json` (testgen: one per shard)."""
    from multiplt import storage

    stage = {"uri": uri, "funnels": {}, "configs": {}}
    try:
        entries = storage.ls(uri) + storage.ls(storage.join(uri, "config"))
        entries += [storage.join(w, "config.json") for w in storage.ls(storage.join(uri, "work"))
                    if w.endswith("/") and storage.exists(storage.join(w, "config.json"))]
    except Exception:  # noqa: BLE001 - an input that moved away is only missing provenance
        return None
    for entry in (e for e in entries if not e.endswith("/")):
        name = entry[len(uri) + 1:]
        try:
            if name.startswith("funnel") and name.endswith(".json"):
                stage["funnels"][name] = storage.read_json(entry)
            elif (name.startswith("_multiplt_") and name.endswith((".yaml", ".yml"))) or \
                    (name.startswith("config/") and name.endswith((".json", ".yaml", ".yml"))) or \
                    (name.startswith("work/") and name.endswith("/config.json")):
                stage["configs"][name] = _read_config(entry)
        except Exception as exc:  # noqa: BLE001
            LOG.warning("skipping unreadable provenance file %s: %s", entry, exc)
    return stage if stage["funnels"] or stage["configs"] else None


def provenance(uri: str, depth: int = 0, seen: set | None = None) -> list[dict]:
    """[{"uri", "funnels": {file: json}, "configs": {file: dict}}] for the folder and, up to
    PROVENANCE_DEPTH stages back, the input folders its configs name (any value but `out` that is
    a URI or an absolute path). Funnels are the folder's `funnel*.json`; configs as `_stage`
    reads them. An input that holds no such file itself (a stage's data folder such as testgen's
    `tests/` or a corpus's `functions/`, or one file of it) is followed to the folder above it,
    and a file up to the folder above its own."""
    seen = seen if seen is not None else set()
    uri = uri.rstrip("/")
    if depth > PROVENANCE_DEPTH or uri in seen:
        return []
    seen.add(uri)
    stage = _stage(uri)
    if stage is None:
        return []
    out = [stage]
    inputs = {value.rstrip("/") for config in stage["configs"].values() if isinstance(config, dict)
              for key, value in config.items() if key != "out" and _is_location(value)}
    for value in sorted(inputs - {uri}):
        if value in seen:
            continue
        found = provenance(value, depth + 1, seen)
        if not found and depth < PROVENANCE_DEPTH:
            found = _above(value, depth + 1, seen)
        out += found
    return out


def _above(value: str, depth: int, seen: set) -> list[dict]:
    """The provenance of the stage folder above an input that holds no stage files itself: its
    folder, or for a file (a place that lists nothing) also the folder above that one."""
    from multiplt import storage

    parent = _parent(value)
    if parent is None or parent in seen:
        return []
    found = provenance(parent, depth, seen)
    if found:
        return found
    try:
        is_file = storage.exists(value) and not storage.ls(value)
    except Exception:  # noqa: BLE001
        is_file = False
    grandparent = _parent(parent) if is_file else None
    return provenance(grandparent, depth, seen) if grandparent and grandparent not in seen else []


def _check_shards(uri: str, files: list[str]) -> None:
    """MultipltError when the files of one prefix are shards `-K-of-N` of which some K is missing
    (a translate run whose shards are not all collected yet): publishing them would publish part
    of the split."""
    from multiplt.translation.writer import shard_gaps

    for gap in shard_gaps(files)[:1]:
        missing = [f"data/{name}" for name in gap.missing]
        raise MultipltError(f"--from {uri}: data/ holds {gap.held} of the {gap.n} shards of {gap.prefix} "
                            f"(no {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}); "
                            f"publish once every shard is written")


def _canonical(uri: str) -> str:
    """The place a dataset folder is: a local folder by its absolute, normalized path (however
    spelled: relative, `file://`, `..`, a trailing `/`), another URI as written, without a
    trailing `/`. Links are not resolved: a docker stage container sees the data root bind-mounted
    at the path the host gives, where the host may reach it through a link, and a publication from
    either must know the folder as the same."""
    from multiplt import storage

    local = storage.local_path(uri)
    return os.path.normpath(os.path.abspath(local)) if local is not None else uri.rstrip("/")


def source_name(uri: str) -> str:
    """The public name (NAME~HASH, results.place_name) of the dataset folder at `uri`: what its
    card says it was published from, and how a later publication knows the same folder."""
    from multiplt.hub.results import place_name

    return place_name(_canonical(uri))


def _named(found: str) -> str:
    """A source as a card names it (cards.dataset_source) as source_name gives it: a public name
    as it is; a place (a card written before cards named sources by public name) by its name,
    and what names no place (a hand-written card's heading) as it is."""
    from multiplt.hub.results import PLACE_MARK, is_place

    if PLACE_MARK in found and not is_place(found):
        return found
    try:
        return source_name(found)
    except MultipltError:  # e.g. `s3://` and no valid bucket: no folder this one could be
        return found


def check_source(uri: str, where: str, force: bool, replaced: dict, dry_run: bool = False):
    """`check(remote, read)` of a publication of the folder at `uri` (publish.push_bundle's, also
    run on a dry run's folder): the repo holds one source's dataset, the one its card names
    (cards.dataset_source). Publishing the same folder again updates it; publishing another
    folder where the card names another source, or where `data/` holds files its card names no
    source of (a card or publication not of this command), would replace that dataset's splits:
    refused (MultipltError, nothing sent) unless `force`, which logs it and records the other
    source in `replaced["source"]`. `where` names the repo (or the dry run's folder, `dry_run`)
    in the error. The results table of `publish results` is not a dataset's
    (dataset_owns refuses it, also with `force`)."""
    from multiplt.hub.results import DATA_FILE

    ours = source_name(uri)

    def check(remote: dict, read) -> None:
        data = sorted(p for p in remote if p.startswith("data/") and p != DATA_FILE)
        found = cards.dataset_source(read("README.md")) if "README.md" in remote else None
        theirs = _named(found) if found else None
        if theirs == ours or (theirs is None and not data):
            return
        held = (f"the dataset published from `{theirs}`" if theirs else
                f"{data[0]}{f' and {len(data) - 1} more data file(s)' if len(data) > 1 else ''} "
                f"under a card that names no source folder")
        if force:
            LOG.warning("%s holds %s: replacing it with the dataset of --from %s (`%s`), as --force "
                        "asks", where, held, uri, ours)
            replaced["source"] = theirs or "unnamed"
            return
        if dry_run:
            raise MultipltError(f"{where} holds {held}, not --from {uri} (`{ours}`); the dry run would "
                                f"replace its splits, so nothing was written: give another --dry-run "
                                f"folder, or --force to replace it")
        raise MultipltError(f"{where} holds {held}, not --from {uri} (`{ours}`); publishing would "
                            f"replace its splits, so nothing was uploaded: publish to another --repo "
                            f"(in multiplt_publish: another dataset_repo), or give --force to replace it "
                            f"(in multiplt_publish: a manual run with force true)")
    return check


def _check_dry_run(target: str, repo_id: str, check) -> None:
    """`check` (check_source) on what an earlier dry run of `repo_id` left in `target`, which
    stands for the repo; a folder of anything else is refused as Bundle.write_to refuses it."""
    from multiplt.hub.bundle import _check_dry_run_folder

    if not os.path.isdir(target):
        return
    _check_dry_run_folder(target, repo_id)
    remote = {os.path.relpath(os.path.join(d, n), target).replace(os.sep, "/"): ""
              for d, _, names in os.walk(target) for n in names}

    def read(path: str) -> str:
        with open(os.path.join(target, *path.split("/")), encoding="utf-8") as f:
            return f.read()
    check(remote, read)


def build_bundle(uri: str, repo_id: str, license: str, workdir: str) -> tuple[Bundle, dict]:
    """The files to publish and {split: rows}. A split whose files hold no row (a language that
    kept none) is not published: `datasets` cannot load a split without rows, and a card that
    named it would make the whole dataset unloadable."""
    files = _data_files(uri)
    _check_shards(uri, files)
    local = _local_data(uri, workdir)
    splits, rows, schema = split_rows(local, files)
    empty = sorted(s for s, n in rows.items() if not n)
    if len(empty) == len(rows):
        raise MultipltError(f"--from {uri}: no split holds a row ({', '.join(empty)}: 0 rows); "
                            f"nothing to publish")
    if empty:
        LOG.warning("split(s) %s hold 0 rows: not published (datasets cannot load an empty split)",
                    ", ".join(empty))
    bundle = Bundle(workdir)
    for split, entries in splits.items():
        for repo_path, path in entries if rows[split] else []:
            bundle.add_file(repo_path, path)
    # the folder by its place (a relative path is no place: its card would show the spelling)
    stages = provenance(_canonical(uri))
    bundle.add_text("README.md", cards.dataset_card(repo_id, rows, schema, stages, license,
                                                    source=source_name(uri)))
    return bundle, rows


def publish_dataset(uri: str, repo_id: str, private: bool = False, revision: str = "main",
                    dry_run: str | None = None, license: str = cards.DEFAULT_LICENSE,
                    endpoint: str | None = None, force: bool = False) -> dict:
    """Publish the folder at `uri` to the dataset repo `repo_id` (branch `revision`), or with
    `dry_run` write what the repo would hold into that local folder. A repo (or dry-run folder)
    holding another source folder's dataset is refused unless `force` (check_source)."""
    from multiplt import storage
    from multiplt.hub.auth import resolve_token
    from multiplt.hub.publish import data_or_card, push_bundle

    # Checked before anything is read: a dry run writes files to look at, so only to a local
    # folder (an s3:// target would otherwise become a local folder named `s3:`).
    target = storage.local_path(dry_run) if dry_run else None
    if dry_run and target is None:
        raise MultipltError(f"--dry-run {dry_run}: a dry run writes to a local folder, not to object storage")
    source = storage.local_path(uri)
    if target and source:  # the dry run removes data files a push would delete: never the source's
        inside, folder = os.path.realpath(target), os.path.realpath(source)
        if inside == folder or inside.startswith(folder.rstrip(os.sep) + os.sep):
            raise MultipltError(f"--dry-run {dry_run} is the dataset folder or inside it; give "
                                f"another folder")
    token = None if dry_run else resolve_token()  # a push needs one: refused before any reading
    with tempfile.TemporaryDirectory(prefix="multiplt-publish-dataset-") as workdir:
        bundle, rows = build_bundle(uri, repo_id, license, workdir)
        with bundle:
            summary = {"repo": repo_id, "splits": rows, "files": len(bundle.files)}
            LOG.info("dataset %s: %d split(s), %s rows", uri, len(rows),
                     ", ".join(f"{s}={n}" for s, n in sorted(rows.items())))
            replaced: dict = {}
            if dry_run:
                _check_dry_run(target, repo_id, check_source(
                    uri, f"--dry-run {dry_run} (a dry run of {repo_id})", force, replaced, dry_run=True))
                written = bundle.write_to(target, data_or_card, owner=repo_id)
                LOG.info("dry run: %s holds the %d file(s) a push would leave in the repo (%d "
                         "written now); sent nothing", target, len(bundle.files), len(written))
                return {**summary, "dry_run": target, "uploaded": 0, **_replaced(replaced)}
            where = f"--repo {repo_id}" + (f" (branch {revision})" if revision != "main" else "")
            result = push_bundle(bundle, repo_id, "dataset", private, revision,
                                 message=f"Publish dataset: {sum(rows.values())} rows in "
                                         f"{sum(1 for n in rows.values() if n)} split(s)",
                                 deletable=dataset_owns(repo_id, data_or_card), endpoint=endpoint,
                                 token=token, check=check_source(uri, where, force, replaced))
            _record(uri, repo_id, revision, result["commit"], endpoint)
            return {**summary, **result, **_replaced(replaced)}


def _replaced(replaced: dict) -> dict:
    """The summary's `replaced`: the source of the dataset --force replaced, when it did."""
    return {"replaced": replaced["source"]} if replaced else {}


def dataset_owns(repo_id: str, data_or_card):
    """`deletable` of a dataset publication: the repo's `data/` files and card that its folder no
    longer has, except the results table of `publish results` (results.DATA_FILE): a repo that
    holds one is the results store's, and publishing a dataset there is refused (MultipltError,
    before anything is uploaded) instead of deleting it. (A dataset split named `results` in one
    file has that name too; it is refused only once the folder has no such split any more.)"""
    from multiplt.hub.results import DATA_FILE

    def deletable(path: str) -> bool:
        if path == DATA_FILE:
            raise MultipltError(f"--repo {repo_id} holds {path}, the results table of `multiplt publish "
                                f"results`, which publishing a dataset there would delete; nothing was "
                                f"uploaded: publish the dataset to a dataset repo of its own")
        return data_or_card(path)
    return deletable


def _record(uri: str, repo_id: str, revision: str, commit: str, endpoint: str | None) -> None:
    """`<folder>/published.json`: where the dataset went (the UI's Datasets page links it)."""
    from huggingface_hub import constants

    from multiplt import storage

    url = f"{(endpoint or constants.ENDPOINT).rstrip('/')}/datasets/{repo_id}"
    if revision != "main":
        url += f"/tree/{revision}"
    storage.write_json(storage.join(uri, "published.json"),
                       {"repo": repo_id, "revision": revision, "commit": commit, "url": url}, indent=2)
