"""`multiplt publish checkpoints`: every selected epoch checkpoint of training outputs becomes
one commit on the model repo's `main`, tagged `LANG-EXPERIMENT-epochN` (the manifest's tag).

Each commit holds exactly the checkpoint's files (bf16 safetensors, config, tokenizer, the
resolved training config, with every local path or storage URI in it as its public name NAME~HASH:
CheckpointBundle) plus the model card; files of the previous checkpoint that this one
lacks are deleted, so a tag never carries stale weights. Before anything is sent every selected
checkpoint is checked (checkpoint_files): weights and config, its `_multiplt_train.yaml`, and a
tokenizer that loads: a checkpoint without tokenizer files gets the training tokenizer's, one
whose tokenizer files do not load (e.g. tokenizer_config.json without tokenizer.json) is an
error; a missing generation_config.json is only a warning. Manifest rows whose tag is not
`LANG-EXPERIMENT-epochN` of their own language, experiment and epoch are refused (check_tag).
Tags are checked next: one that exists with the same files (the card aside) is skipped, one with
other files is an error unless `force` (then it is moved); when the checkpoint there is of another
base model the error says so and points to a repo per base (_conflict). A rerun after a commit
whose tag was not created tags that commit. The card lists this publication's checkpoints and
the other checkpoints of the card on main that still exist (union_outputs); without a results
store it keeps the pass@1 of that card (_card), so such a rerun after one with a store commits
nothing.
"""

from __future__ import annotations

import logging
import os
import tempfile
from typing import NamedTuple

import yaml

from multiplt.errors import MultipltError, PlatformError
from multiplt.hub import cards
from multiplt.hub.bundle import Bundle
from multiplt.results.benchmarks import benchmark_name

LOG = logging.getLogger("multiplt.hub")
# The files a tokenizer's save_pretrained may write: a checkpoint holding none of them has no
# tokenizer (the training tokenizer's are added); one holding some must load from them.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "added_tokens.json", "vocab.json", "merges.txt", "vocab.txt", "tokenizer.model",
                   "spiece.model", "chat_template.jinja")
GENERATION_CONFIG = "generation_config.json"
CARD = "README.md"


def load_output(out: str) -> dict:
    from multiplt import storage
    from multiplt.storage import manifest
    from multiplt.storage.outputs import check_out
    from multiplt.training import checkpoint

    check_out(out, "--from")  # the URI itself, before the manifest's path is made from it
    try:
        rows = manifest.read(out)
    except MultipltError:
        raise
    except Exception as exc:  # noqa: BLE001 - unreadable manifest or bad URI
        raise MultipltError(f"--from {out}: cannot read its manifest: {exc}") from None
    if not rows:
        raise MultipltError(f"--from {out} is not a training output with checkpoints: "
                            f"{storage.join(out, manifest.MANIFEST)} is missing or empty")
    for row in rows:
        check_tag(out, row)
    config = checkpoint.read_run_config(out) or {}
    recipe = {**config.get("config", config), "lang": rows[0]["lang"], "experiment": rows[0]["experiment"]}
    if isinstance(config.get("base_commit"), str) and config["base_commit"]:
        recipe["base_commit"] = config["base_commit"]
    hub = dataset_on_hub(recipe.get("dataset"), config.get("dataset_commit"))
    if hub:
        recipe["dataset_hub"] = hub
    return {"out": out, "rows": rows, "config": recipe}


def dataset_on_hub(dataset, commit) -> str | None:
    """`REPO@COMMIT` of a checkpoint's training data on the Hub, for its card: a Hub dataset at
    the commit the run recorded (`dataset_commit`), or a dataset folder (a local path or storage
    URI) that `multiplt publish dataset` published: its `published.json` (that of the folder, or
    of the folder above a `data/` folder or above the `data/` of a data file the run read) names
    the repo and commit; a data file outside a `data/` folder was not published.
    None when there is neither (an unpublished folder keeps its public name NAME~HASH); a
    published.json that cannot be read or names no repo and commit is a warning."""
    from multiplt import storage
    from multiplt.hub.results import is_place
    from multiplt.training.data import DATA_SUFFIXES

    if not isinstance(dataset, str) or not dataset:
        return None
    if not is_place(dataset):  # a Hub dataset name
        return f"{dataset}@{commit}" if isinstance(commit, str) and commit else None
    folder = dataset.rstrip("/")
    if folder.endswith(DATA_SUFFIXES):
        # `publish dataset` publishes the files of `data/` only: a file elsewhere in a published
        # folder (or beside its data/) was never published
        folder = folder.rpartition("/")[0]
        if folder.rpartition("/")[2] != "data":
            return None
    candidates = [folder] + ([folder.rpartition("/")[0]] if folder.rpartition("/")[2] == "data" else [])
    for place in (c for c in candidates if c):
        uri = storage.join(place, "published.json")
        try:
            if not storage.exists(uri):
                continue
            record = storage.read_json(uri)
        except Exception as exc:  # noqa: BLE001 - the card then names the folder by its public name
            LOG.warning("cannot read %s (the dataset's publication): %s; the card names the dataset "
                        "by its public name", uri, exc)
            return None
        repo = record.get("repo") if isinstance(record, dict) else None
        published = record.get("commit") if isinstance(record, dict) else None
        if isinstance(repo, str) and repo.count("/") == 1 and isinstance(published, str) and published:
            return f"{repo}@{published}"
        LOG.warning("%s names no repo and commit; the card names the dataset by its public name", uri)
        return None
    return None


def check_tag(out: str, row: dict) -> None:
    """A manifest row's tag must be `LANG-EXPERIMENT-epochN` of its own language (a code the
    registry knows), experiment (a label `train --experiment` takes) and epoch, as `multiplt
    train` writes it: an edited row would otherwise be committed under a tag that misnames it
    (or that the Hub refuses only after the commit). MultipltError before anything is sent."""
    from multiplt.languages import registry
    from multiplt.training.config import check_experiment

    tag, lang, experiment, epoch = (row.get(k) for k in ("tag", "lang", "experiment", "epoch"))
    where = f"--from {out}: manifest row of {tag!r}"
    try:
        known = registry.get(lang).code == lang
    except MultipltError:
        known = False
    if not known:
        raise MultipltError(f"{where}: lang {lang!r} is not a language code "
                            f"({', '.join(registry.names())}); nothing was uploaded")
    check_experiment(experiment, f"{where}: experiment")  # manifest.read checked the types
    expected = f"{lang}-{experiment}-epoch{epoch}"
    if tag != expected:
        raise MultipltError(f"{where}: the tag is not {expected!r} (LANG-EXPERIMENT-epochN of its "
                            f"lang, experiment and epoch, as `multiplt train` writes it); nothing "
                            f"was uploaded")


def distinct_outputs(outs: list[str]) -> list[tuple[str, list[str]]]:
    """(output, how it was given each time) per distinct --from folder, in the order first given:
    one folder given twice (however spelled: a local folder is known by its real path, a remote
    URI as written, as `results record` knows run folders) is published once, with a warning.
    Two folders holding the same tags (copies, or two bases under one experiment name) stay two,
    and publish_checkpoints refuses them."""
    from multiplt.results.store import folder_identity
    from multiplt.storage.outputs import check_out

    given: dict[str, list[str]] = {}
    for out in outs:
        check_out(out, "--from")  # a bad URI is named with its flag, before it is compared
        given.setdefault(folder_identity(out), []).append(out)
    for spellings in given.values():
        if len(spellings) > 1:
            names = list(dict.fromkeys(s.rstrip("/") or s for s in spellings))
            also = f" (as {', '.join(names)})" if len(names) > 1 else ""
            LOG.warning("--from %s: given %s%s; published once", names[0],
                        "twice" if len(spellings) == 2 else f"{len(spellings)} times", also)
    return [(spellings[0], spellings) for spellings in given.values()]


class PassAt1(NamedTuple):
    """pass@1 per tag on one benchmark: `scores` {tag: pass@1}, `benchmark` its name ("" when
    the store does not name it; None when no checkpoint was evaluated) and `num_problems`."""

    scores: dict[str, float]
    benchmark: str | None = None
    num_problems: tuple[int, ...] = ()


def store_rows(store: str | None) -> list[dict] | None:
    """The rows of the results store `store` (--results-store), None without one."""
    if not store:
        return None
    from multiplt import storage
    from multiplt.results import read_store

    if not storage.exists(store):  # a misspelled store would silently drop pass@1 from the card
        raise MultipltError(f"--results-store {store}: no results store there (record runs first "
                            f"with `multiplt results record`, or leave the option out)")
    return read_store(store).to_dicts()


def pass_at_1(store: str | None, outputs: list[dict], repo_id: str, also: frozenset = frozenset(),
              rows: list[dict] | None = None) -> PassAt1:
    """pass@1 of the checkpoints in the results store (the training output or the published
    repo as the model, the tag as the revision), on ONE benchmark so that the tags compare: the
    benchmark that covers the most of the outputs' tags and the tags in `also` (the card's other
    rows; ties: the one with more problems, then the name). A partial run (`--limit`,
    `--problems`) is a benchmark of its own, so a 5-problem smoke run never outscores the full
    benchmark. Per tag the latest recorded row at k=1. `rows`: the store's rows read already
    (store_rows), else `store` is read."""
    if rows is None:
        rows = store_rows(store)
    if rows is None:
        return PassAt1({})
    models = {given.rstrip("/") for o in outputs for given in o.get("given", [o["out"]])} | {repo_id}
    tags = {r["tag"] for o in outputs for r in o["rows"]} | set(also)
    by_benchmark: dict[str, dict[str, list[dict]]] = {}
    for row in rows:
        if row["k"] == 1 and row["model"].rstrip("/") in models and row.get("revision") in tags:
            by_benchmark.setdefault(benchmark_name(row), {}).setdefault(row["revision"], []).append(row)
    if not by_benchmark:
        return PassAt1({})

    def most_problems(name: str) -> int:
        return max((r.get("num_problems") or 0 for rs in by_benchmark[name].values() for r in rs), default=0)

    name = min(by_benchmark, key=lambda b: (-len(by_benchmark[b]), -most_problems(b), b))
    chosen = {tag: cards.latest(rows) for tag, rows in by_benchmark[name].items()}
    problems = tuple(sorted({r["num_problems"] for r in chosen.values() if r.get("num_problems") is not None}))
    return PassAt1({tag: r["estimate"] for tag, r in chosen.items()}, name, problems)


def wanted_tags(tags: str) -> list[str]:
    """The tags of a comma-separated --tags list; an error when it names none (e.g. `--tags ''`)."""
    wanted = [t.strip() for t in tags.split(",") if t.strip()]
    if not wanted:
        raise MultipltError(f"--tags {tags!r} names no checkpoint: give all, best or a "
                            f"comma-separated list of tags")
    return wanted


def select(output: dict, tags: str, passk: dict) -> list[dict]:
    rows = output["rows"]
    if tags == "all":
        return rows
    if tags == "best":
        return [best(output, passk)[0]]
    wanted = wanted_tags(tags)
    return [r for r in rows if r["tag"] in wanted]


def best(output: dict, passk: dict) -> tuple[dict, str]:
    """The checkpoint `--tags best` picks of one output, and by what: the highest pass@1 of its
    checkpoints in `passk` (ties: the earlier epoch), else the lowest eval loss, else the last
    epoch ("pass@1", "eval loss" or "last epoch")."""
    rows = output["rows"]
    scored = [r for r in rows if r["tag"] in passk]
    if scored:
        return max(scored, key=lambda r: (passk[r["tag"]], -r["epoch"])), "pass@1"
    with_loss = [r for r in rows if r.get("eval_loss") is not None]
    if with_loss:
        return min(with_loss, key=lambda r: r["eval_loss"]), "eval loss"
    return rows[-1], "last epoch"


def why_best(output: dict, pass1: PassAt1, results_store: str | None) -> str:
    """The log line of `--tags best` for one output: the tag, the criterion and its value."""
    row, by = best(output, pass1.scores)
    rows = output["rows"]
    head = f"--tags best: {row['tag']} of {output['out']}"
    if by == "pass@1":
        scored = sum(r["tag"] in pass1.scores for r in rows)
        return (f"{head}, by pass@1 on {cards.benchmark_label(pass1.benchmark, pass1.num_problems)}: "
                f"{pass1.scores[row['tag']]:.4f}, the highest of the {scored} of its {len(rows)} "
                f"checkpoint(s) evaluated there (ties: the earlier epoch)")
    if not results_store:
        no_pass1 = "no --results-store given"
    elif pass1.benchmark is None:
        no_pass1 = f"none of its checkpoints is evaluated in {results_store}"
    else:
        no_pass1 = (f"none of its checkpoints is evaluated in {results_store} on "
                    f"{cards.benchmark_label(pass1.benchmark, pass1.num_problems)}, the benchmark pass@1 "
                    f"compares on")
    if by == "eval loss":
        losses = sum(r.get("eval_loss") is not None for r in rows)
        return (f"{head}, by eval loss: {row['eval_loss']:.4f}, the lowest of its {losses} "
                f"checkpoint(s) with one ({no_pass1})")
    return f"{head}, the last epoch ({no_pass1}, and no checkpoint has an eval loss)"


def checkpoint_files(row: dict, workdir: str, config: dict | None = None) -> dict[str, str]:
    """{repo path: local path} of one checkpoint, with the training tokenizer added when it has
    no tokenizer files (`config`: its output's training config, which names a --tokenizer). An
    error before anything is uploaded: no config.json or safetensors weights, weights not in
    bf16, no `_multiplt_train.yaml` (every checkpoint of `multiplt train` has one: without it
    the folder is an incomplete copy, and the tag would not say what made it), or tokenizer
    files that do not load. No generation_config.json is a warning: from_pretrained then takes
    the generation defaults from config.json."""
    from multiplt import storage
    from multiplt.training.checkpoint import RUN_CONFIG

    local = storage.local_path(row["uri"])
    if local is None:
        local = os.path.join(workdir, row["tag"])
        storage.download_dir(row["uri"], local)
    if not os.path.isdir(local):
        raise MultipltError(f"checkpoint {row['tag']}: {row['uri']} is missing")
    files = {}
    for dirpath, _, names in os.walk(local):
        for name in names:
            path = os.path.join(dirpath, name)
            files[os.path.relpath(path, local).replace(os.sep, "/")] = path
    if "config.json" not in files or not any(p.endswith(".safetensors") for p in files):
        raise MultipltError(f"checkpoint {row['tag']} at {row['uri']} lacks config.json or "
                            f"safetensors weights")
    for path in (p for p in files if p.endswith(".safetensors")):
        dtypes = safetensors_dtypes(files[path])
        if dtypes != {"BF16"}:
            raise MultipltError(f"checkpoint {row['tag']}: {path} holds {', '.join(sorted(dtypes))} "
                                f"tensors; checkpoints are published in bf16 (as `multiplt train` saves them)")
    if RUN_CONFIG not in files:
        raise MultipltError(f"checkpoint {row['tag']} at {row['uri']} lacks {RUN_CONFIG} (the training "
                            f"config `multiplt train` writes into every checkpoint): an incomplete copy? "
                            f"nothing was uploaded")
    tokenizer = [name for name in TOKENIZER_FILES if name in files]
    if tokenizer:
        _check_tokenizer(row, local, tokenizer, config or {})
    else:
        files.update(_base_tokenizer(row, os.path.join(workdir, f"tok-{row['tag']}"), config))
    if GENERATION_CONFIG not in files:
        LOG.warning("checkpoint %s at %s has no %s: published without it (from_pretrained then takes "
                    "the generation defaults from config.json)", row["tag"], row["uri"], GENERATION_CONFIG)
    return files


def _check_tokenizer(row: dict, local: str, present: list[str], config: dict) -> None:
    """The checkpoint's own tokenizer files must load, as from_pretrained(repo, revision=tag) will
    load them; an error naming the checkpoint and the files otherwise (nothing is uploaded)."""
    from multiplt.models.tokenizer import load_tokenizer

    try:
        load_tokenizer(local)
    except MultipltError as exc:  # a corrupt file, named
        raise MultipltError(f"checkpoint {row['tag']}: {exc}; nothing was uploaded") from None
    except Exception as exc:  # noqa: BLE001 - whatever transformers raises for missing files
        raise MultipltError(
            f"checkpoint {row['tag']} at {row['uri']}: its tokenizer does not load from the files it "
            f"has ({', '.join(present)}): {_cause(exc)}; copy the training tokenizer's files "
            f"({_training_tokenizer(row, config)[0] or 'the base model'}) into it, or remove its tokenizer files to "
            f"publish the training tokenizer's; nothing was uploaded") from None


def safetensors_dtypes(path: str) -> set[str]:
    """The tensor dtypes in a safetensors file, from its JSON header (no tensors loaded)."""
    import json
    import struct

    try:
        with open(path, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
    except (OSError, ValueError, struct.error) as exc:
        raise MultipltError(f"{path} is not a safetensors file: {exc}") from None
    return {v["dtype"] for k, v in header.items() if k != "__metadata__"}


def _cause(exc: Exception, limit: int = 300) -> str:
    """An exception's message on one line (transformers' span several), at most `limit` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _training_tokenizer(row: dict, config: dict | None) -> tuple[str | None, str | None]:
    """(name, revision) of the tokenizer a checkpoint was trained with, never the checkpoint
    itself (which lacks one where this is asked): the manifest row's when it names another
    (older rows name the base's), else the training config's --tokenizer, else the base model's
    at its revision."""
    from multiplt.storage.manifest import other_tokenizer

    name = other_tokenizer(row) or (config or {}).get("tokenizer") or row.get("base")
    return name, row.get("base_revision") if name == row.get("base") else None


def _base_tokenizer(row: dict, folder: str, config: dict | None = None) -> dict[str, str]:
    from multiplt.models.tokenizer import load_tokenizer

    name, revision = _training_tokenizer(row, config)
    if not name:
        raise MultipltError(f"checkpoint {row['tag']} has no tokenizer and its manifest row names none")
    LOG.info("checkpoint %s has no tokenizer: adding the training tokenizer (%s)", row["tag"], name)
    try:
        load_tokenizer(name, revision=revision).save_pretrained(folder)
    except MultipltError:
        raise
    except Exception as exc:  # noqa: BLE001 - an unreachable or unknown tokenizer: one error
        raise MultipltError(f"checkpoint {row['tag']} has no tokenizer, and the training tokenizer "
                            f"{name!r} to add does not load: {_cause(exc)}; nothing was uploaded") from None
    return {n: os.path.join(folder, n) for n in os.listdir(folder)}


class CheckpointBundle(Bundle):
    """One checkpoint's files as published. Its `_multiplt_train.yaml` is a public copy
    (public_run_config): the training config with every place of the deployment in it (`out`,
    a local base model or dataset, a recipe file) named by its public name NAME~HASH, as `publish
    results` names places; Hub ids as they are. A tag (or main) that holds the checkpoint's own
    file instead, as publications sent it before the copy existed, holds the same checkpoint
    (`earlier`: {repo path: the local file as sent before}): a rerun of it uploads nothing
    and its tag is no conflict; such a tag keeps its file."""

    def __init__(self, tmp_root: str | None = None):
        super().__init__(tmp_root)
        self.earlier: dict[str, str] = {}  # {repo path: the local file as publications sent it before}
        self._earlier_hashes: dict[str, tuple[str, str]] = {}

    def publish_run_config(self, row: dict) -> None:
        """Replace the checkpoint's `_multiplt_train.yaml` by its public copy; an error naming
        the checkpoint (before anything is sent) when the file is not a YAML mapping."""
        from multiplt.hub.bundle import file_hashes
        from multiplt.training.checkpoint import RUN_CONFIG

        own = self.files[RUN_CONFIG]
        try:
            with open(own, encoding="utf-8") as f:
                data = yaml.safe_load(f)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            data = exc
        if not isinstance(data, dict):
            why = _cause(data) if isinstance(data, Exception) else f"a {type(data).__name__}, not a mapping"
            raise MultipltError(f"checkpoint {row['tag']} at {row['uri']}: its {RUN_CONFIG} is not a training "
                                f"config ({why}); nothing was uploaded")
        self.add_text(RUN_CONFIG, public_run_config(data))
        self.earlier[RUN_CONFIG] = own
        self._earlier_hashes[RUN_CONFIG] = file_hashes(own)

    def changes(self, remote: dict[str, str], deletable=lambda path: True,
                ignore=frozenset()) -> tuple[dict[str, str], list[str]]:
        remote = {path: self.hashes(path)[0] if held in self._earlier_hashes.get(path, ()) else held
                  for path, held in remote.items()}
        return super().changes(remote, deletable, ignore)


def public_run_config(run_config: dict) -> str:
    """The text of a checkpoint's `_multiplt_train.yaml` as published: `run_config` with its
    places as public names (results.public_places), dumped as `multiplt train` writes it."""
    from multiplt.hub.results import public_places

    return yaml.safe_dump(public_places(run_config), sort_keys=False)


def publish_checkpoints(outs: list[str], repo_id: str, tags: str = "all", force: bool = False,
                        private: bool = False, results_store: str | None = None,
                        license: str = cards.DEFAULT_LICENSE, endpoint: str | None = None) -> dict:
    from multiplt.hub.auth import resolve_token
    from multiplt.hub.publish import client_for

    wanted = [] if tags in ("all", "best") else wanted_tags(tags)
    distinct = distinct_outputs(outs)  # each --from's URI checked
    # the arguments are checked: a missing token is refused before a manifest is read, a
    # tokenizer loaded or a base model's tokenizer downloaded
    token = resolve_token()
    outputs = []
    for out, given in distinct:
        outputs.append({**load_output(out), "given": given})
    scored = store_rows(results_store)  # read once: the card may look again (_card)
    pass1 = pass_at_1(results_store, outputs, repo_id, rows=scored)
    passk = pass1.scores
    selected = [(o, r) for o in outputs for r in select(o, tags, passk)]
    unknown = sorted(set(wanted) - {r["tag"] for _, r in selected})
    if not selected or unknown:
        known = ", ".join(r["tag"] for o in outputs for r in o["rows"])
        raise MultipltError(f"--tags {tags!r}: {', '.join(unknown) or 'no checkpoint'} not in the "
                            f"manifests; the outputs have: {known}")
    # two outputs with the same tag (two bases trained under one experiment name, or one output
    # given twice) would upload one and then fail to tag the other: refuse before any upload
    seen: dict[str, str] = {}
    for o, r in selected:
        if r["tag"] in seen:
            raise MultipltError(f"tag {r['tag']} is in two --from outputs ({seen[r['tag']]} and "
                                f"{o['out']}); a repo holds one checkpoint per tag: publish them to "
                                f"different repos or select other --tags; nothing was uploaded")
        seen[r["tag"]] = o["out"]
    if tags == "best":
        for output in outputs:
            LOG.info("%s", why_best(output, pass1, results_store))
    published = [{**o, "rows": [r for oo, r in selected if oo is o]} for o in outputs]
    summary = {"repo": repo_id, "tags": [], "skipped": [], "moved": [], "commits": 0}
    with tempfile.TemporaryDirectory(prefix="multiplt-publish-ckpt-") as workdir:
        bundles = []
        for output, row in selected:
            bundle = CheckpointBundle(workdir)  # its texts go when workdir does, also on an error
            for repo_path, local in checkpoint_files(row, workdir, output["config"]).items():
                bundle.add_file(repo_path, local)
            bundle.publish_run_config(row)
            bundles.append((output, row, bundle))
        client = client_for(repo_id, "model", private, endpoint, token)
        refs = client.refs()
        existing = refs["tags"]
        todo = []
        for output, row, bundle in bundles:  # every conflict is found before anything is uploaded
            tag = row["tag"]
            if tag not in existing:
                todo.append((row, bundle, False))
            elif bundle.same_as(client.files_at(existing[tag]), ignore={CARD}):
                LOG.info("tag %s exists with the same files: skipped", tag)
                summary["skipped"].append(tag)
            elif force:
                todo.append((row, bundle, True))
            else:
                raise MultipltError(_conflict(client, repo_id, tag, existing[tag], output, bundle))
        kept = _card_on_main(client, refs["branches"].get("main"))
        moved = {row["tag"] for row, _, is_moved in todo if is_moved}
        card = _card(repo_id, outputs, published, kept, existing, moved, license, scored, pass1)
        for _, _, bundle in bundles:
            bundle.add_text(CARD, card)
        for row, bundle, moved_tag in todo:
            refs = client.refs()
            if not moved_tag and _made_meanwhile(client, refs["tags"].get(row["tag"]), row, bundle):
                summary["skipped"].append(row["tag"])
                continue
            head = refs["branches"]["main"]
            changed, deleted = bundle.changes(client.files_at(head))
            oid = head
            if changed or deleted:
                oid = client.commit(changed, deleted, row["tag"], "main", parent=head)
                summary["commits"] += 1
            if moved_tag:
                client.delete_tag(row["tag"])
                summary["moved"].append(row["tag"])
            try:
                client.create_tag(row["tag"], oid)
            except MultipltError:  # e.g. 409: another publication tagged it since refs() was read
                if moved_tag or not _made_meanwhile(client, client.refs()["tags"].get(row["tag"]), row, bundle):
                    raise
                summary["skipped"].append(row["tag"])
                continue
            LOG.info("tagged %s at %s", row["tag"], oid[:12])
            summary["tags"].append(row["tag"])
        summary["commits"] += _refresh_card(client, bundles[-1][2], card)
        for _, _, bundle in bundles:
            bundle.cleanup()
        _record(published, repo_id, summary, client.refs()["tags"], endpoint)
    if not summary["tags"] and not summary["commits"]:
        LOG.info("%s is up to date: nothing uploaded", repo_id)
    return summary


def _record(published: list[dict], repo_id: str, summary: dict, tags_now: dict, endpoint: str | None) -> None:
    """`<training output>/published.json`: the repo and the output's tags on it (this
    publication's and, to the same repo, the earlier ones' that still exist), as `publish
    dataset` records its folder's; `publish results` names the checkpoints by them."""
    from huggingface_hub import constants

    from multiplt import storage

    done = {*summary["tags"], *summary["skipped"], *summary["moved"]}
    for output in published:
        uri = storage.join(output["out"], "published.json")
        try:
            before = storage.read_json(uri) if storage.exists(uri) else {}
        except PlatformError as exc:  # storage down: rewriting would drop the earlier tags
            LOG.warning("published, but cannot read %s to add to it: %s", uri, exc)
            continue
        except (MultipltError, ValueError):  # an unreadable record is rewritten
            before = {}
        earlier = before.get("tags") or [] if isinstance(before, dict) and before.get("repo") == repo_id else []
        tags = sorted(({*earlier, *(r["tag"] for r in output["rows"] if r["tag"] in done)}) & set(tags_now))
        url = f"{(endpoint or constants.ENDPOINT).rstrip('/')}/{repo_id}"
        try:
            storage.write_json(uri, {"repo": repo_id, "tags": tags, "url": url}, indent=2, if_changed=True)
        except Exception as exc:  # noqa: BLE001 - the publication itself is done: a read-only output
            LOG.warning("published, but cannot write %s: %s", uri, exc)


def _card_on_main(client, head: str | None) -> cards.KeptPass1 | None:
    """What the card on the repo's main says of its checkpoints (cards.card_pass_at_1), None
    when main has no card (the Hub answers 404 for its README.md: a new repo) or none of
    model_card's form (a hand-written card). Reads the card alone, not a listing of the tree."""
    text = client.read_text_if_any(CARD, head) if head is not None else None
    return None if text is None else cards.card_pass_at_1(text)


def union_outputs(published: list[dict], kept: cards.KeptPass1 | None, existing: dict) -> list[dict]:
    """The outputs the card lists: this publication's (`published`) and, of the card on main
    (`kept`), the rows of the tags that this publication does not publish and that still exist
    on the repo (`existing` {tag: commit}), with the recipe that card gives them. A kept row
    joins this publication's output of its language and experiment (e.g. the other epochs after
    `--tags best`), else an output of its own. Sorted by language and experiment, rows by
    epoch, so that the card does not depend on the order the outputs were published in."""
    groups = [{**o, "rows": list(o["rows"])} for o in published]
    by_key: dict[tuple, dict] = {}
    for group in groups:
        by_key.setdefault((group["config"].get("lang"), group["config"].get("experiment")), group)
    new = {r["tag"] for o in published for r in o["rows"]}
    for row in kept.rows if kept else ():
        if row["tag"] in new or row["tag"] not in existing:
            continue
        key = _row_key(row)
        if key not in by_key:
            config = {"lang": key[0], "experiment": key[1], **(kept.recipes or {}).get(key, {})}
            by_key[key] = {"config": config, "rows": []}
            groups.append(by_key[key])
        by_key[key]["rows"].append(row)
    for group in groups:
        group["rows"].sort(key=lambda r: _epoch(r["epoch"]))
    groups.sort(key=lambda g: (g["config"].get("lang") or "", g["config"].get("experiment") or ""))
    return [g for g in groups if g["rows"]]


def _row_key(row: dict) -> tuple[str, str | None]:
    """(lang, experiment) of a kept card row, from its tag `LANG-EXPERIMENT-epochN`."""
    lang, epoch, tag = row["lang"], str(row["epoch"]), row["tag"]
    head, tail = f"{lang}-", f"-epoch{epoch}"
    if tag.startswith(head) and tag.endswith(tail) and len(tag) > len(head) + len(tail):
        return lang, tag[len(head):-len(tail)]
    return lang, None


def _epoch(value) -> tuple:
    text = str(value)
    return (0, int(text), "") if text.isdigit() else (1, 0, text)


def _card(repo_id: str, outputs: list[dict], published: list[dict], kept: cards.KeptPass1 | None,
          existing: dict, moved: set, license: str, scored: list[dict] | None,
          pass1: PassAt1) -> str:
    """The model card after this publication: its checkpoints and the card on main's other
    checkpoints that still exist (union_outputs), with pass@1 from the results store, or
    without one as the card on main gives it (a tag moved by --force has its old pass@1 no
    more: named as not looked up). Rows the store does not score keep the card's pass@1 when
    it is on the benchmark the store's pass@1 is on (or the store scores none)."""
    table = union_outputs(published, kept, existing)
    tags = [r["tag"] for o in table for r in o["rows"]]
    new = {r["tag"] for o in published for r in o["rows"]}
    carried = {t: kept.scores[t] for t in tags if kept and t in kept.scores and t not in moved}
    if scored is None:  # no --results-store
        unlooked = tuple(t for t in tags if not kept or t not in kept.tags or t in kept.not_looked_up
                         or t in moved)
        if carried:
            LOG.info("no --results-store: the card keeps the pass@1 of %d tag(s) from the card on %s",
                     len(carried), repo_id)
        return cards.model_card(repo_id, table, carried, license, note=kept.note if kept else "",
                                not_looked_up=unlooked)
    others = frozenset(set(tags) - new)
    if others:  # `pass1` is this publication's lookup: look again, with the card's other tags
        pass1 = pass_at_1(None, outputs, repo_id, also=others, rows=scored)
    scores = {t: pass1.scores[t] for t in tags if t in pass1.scores}
    same_benchmark = pass1.benchmark is None or (kept is not None
                                                  and cards.note_benchmark(kept.note) == pass1.benchmark)
    if same_benchmark:
        scores.update({t: v for t, v in carried.items() if t not in new and t not in scores})
    unlooked = tuple(t for t in tags if kept and t not in new and t not in scores and t in kept.not_looked_up)
    note = kept.note if scores and pass1.benchmark is None else None
    return cards.model_card(repo_id, table, scores, license, benchmark=pass1.benchmark,
                            num_problems=pass1.num_problems, note=note, not_looked_up=unlooked)


def _conflict(client, repo_id: str, tag: str, oid: str, output: dict, bundle: Bundle) -> str:
    """The error for a tag that exists with other files. When the checkpoint at the tag was
    trained from another base model than this one (their `_multiplt_train.yaml`), --force would
    move the tag off that base's checkpoint: the error says so and points to a repo per base
    model instead."""
    from multiplt.hub.results import public_places
    from multiplt.training.checkpoint import RUN_CONFIG

    plain = (f"tag {tag} already exists on {repo_id} with other files; nothing was uploaded (use "
             f"--force to move it)")
    own = getattr(bundle, "earlier", {}).get(RUN_CONFIG)  # the checkpoint's own, with its places
    ours = _base_of(_yaml(own or bundle.files.get(RUN_CONFIG))) or output["config"].get("base")
    try:
        theirs = _base_of(yaml.safe_load(client.read_text(RUN_CONFIG, oid)))
    except PlatformError:
        raise
    except (MultipltError, yaml.YAMLError) as exc:  # none there, or not YAML: say what is known
        LOG.debug("cannot read %s at tag %s: %s", RUN_CONFIG, tag, exc)
        return plain
    # a base at a place is published by its public name (public_run_config), by earlier
    # publications as the place itself: the same base either way
    if not ours or not theirs or public_places(ours.rstrip("/")) == public_places(theirs.rstrip("/")):
        return plain
    return (f"tag {tag} already exists on {repo_id} with the checkpoint of another base model "
            f"({theirs}; this one's is {ours}); nothing was uploaded. A repo holds one checkpoint "
            f"per tag: publish each base model's checkpoints to a repo of its own (another --repo; "
            f"in multiplt_publish a checkpoints_repo with {{base}}, e.g. myorg/MultiPL-T-{{base}}), "
            f"not with --force, which would move the tag off the other base's checkpoint")


def _yaml(path: str | None):
    """The YAML file at a local path, None when there is none or it does not parse."""
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except (TypeError, OSError, yaml.YAMLError):
        return None


def _base_of(run_config) -> str | None:
    """The base model a checkpoint's `_multiplt_train.yaml` names (its `config.base`)."""
    config = run_config.get("config") if isinstance(run_config, dict) else None
    base = config.get("base") if isinstance(config, dict) else None
    return base if isinstance(base, str) and base else None


def _made_meanwhile(client, oid: str | None, row: dict, bundle: Bundle) -> bool:
    """Whether the tag, missing when this publication started, now exists (`oid`) with the same
    files: another publication of the same checkpoint (a cleared task's earlier try, a second
    command) made it, which is what a rerun would find and skip. With other files it is a
    conflict, which the caller's error (or the next rerun) reports."""
    if oid is None or not bundle.same_as(client.files_at(oid), ignore={CARD}):
        return False
    LOG.info("tag %s was made meanwhile by another publication, with the same files: skipped",
             row["tag"])
    return True


def _refresh_card(client, bundle: Bundle, card: str) -> int:
    """Commit the current card to main when it changed (e.g. new pass@1 results)."""
    head = client.refs()["branches"]["main"]
    remote = client.files_at(head)
    if remote.get(CARD) in bundle.hashes(CARD):
        return 0
    client.commit({CARD: bundle.files[CARD]}, [], "Update model card", "main", parent=head)
    return 1
