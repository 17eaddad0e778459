"""`generate`: fill a completion folder with n samples per benchmark problem, resumably.

Rerun contract:
- only missing samples are generated (sample i of problem p is completions[i] of p's file), and
  a rerun with nothing missing writes nothing (not even the run record);
- sample i of problem p draws from a seed derived from (seed, p, i) (seeds.py), so an
  interrupted run resumed later gives the same samples as an uninterrupted one;
- a folder made with other sampling settings (temperature, top_p, stop tokens, token limit) or
  another model/revision/tokenizer/tokenizer revision/backend/seed or benchmark file (its sha256)
  is refused with an error naming the difference, and so is a problem file whose language,
  prompt or tests differ from the benchmark's problem;
- so is a folder whose model (or replay source) of the same name holds something else now: the
  record's `model_identity` (folder.MODEL_IDENTITY: a Hub commit, a model folder's content
  digest, a replay source's sha256), written by the first run that draws samples, differs from
  what this run loads (a local folder overwritten, a Hub branch moved, a replay file
  rewritten); a record without one (an older generate's) takes this run's;
- so is a folder whose separate --tokenizer of the same name holds something else now: the
  record's `tokenizer_identity` (folder.TOKENIZER_IDENTITY: a Hub tokenizer's commit, a
  tokenizer folder's digest of its tokenizer files), kept and compared as `model_identity` is;
- the record's `provenance` (multiplt.provenance: the code version, Python's and the generation
  libraries' versions) is the last sampling run's, and no part of what is compared: a newer
  version of the code resumes the folder;
- a problem's file is rewritten (atomically) as each sample finishes, merged with the file as it
  is at that moment (folder.add_samples): samples already there are never replaced, so two
  generates into one folder (a zombie try beside its retry, two evaluations of one model with
  different --n) never leave fewer than either wrote; a sample that finished ahead of an earlier
  one waits under `multiplt_pending` until the gap is filled, so an interrupted run loses only
  the samples in flight, and a rerun draws only the samples the file lacks;
- the run record's n is the most any run asked for, and `complete: true` is written only after
  every selected problem's file was read again and holds at least that many (folder.finish).
"""

from __future__ import annotations

import hashlib
import logging

from multiplt import provenance, storage
from multiplt.benchmarks.jsonl import read_records
from multiplt.errors import MultipltError
from multiplt.generation import folder
from multiplt.generation.backends import make_backend
from multiplt.generation.base import Request, Sampling
from multiplt.log import Funnel, progress

LOG = logging.getLogger("multiplt.generation")
REQUIRED = ("name", "language", "prompt", "tests", "stop_tokens")
# the most completions per problem: every one is a request made up front, so a mistyped huge
# --n would fill the memory before any output (pass@k evaluations use up to 200, MultiPL-T 50).
# Ten times the DAG Params' cap (1000 for evaluate and translate, 100 for testgen): every conf
# they accept runs, and a hand run may go further, but not to where it would hang
MAX_N = 10_000
# the run seed is hashed into each sample's seed (seeds.sample_seed: any int would do, negative
# too) and never given to torch; `results record` stores it in an Int64 column
SEED_RANGE = (-2 ** 63, 2 ** 63)


def check_sampling(*, n: int, temperature: float, top_p: float, max_new_tokens: int,
                   batch_size: int | None = None, concurrency: int | None = None,
                   epoch: int | None = None, seed: int | None = None) -> None:
    """MultipltError naming the first bad generation setting (what every command that generates
    checks before it reads or writes anything)."""
    if n < 1:
        raise MultipltError(f"--n must be at least 1, got {n}")
    if n > MAX_N:
        raise MultipltError(f"--n must be at most {MAX_N}, got {n}")
    if max_new_tokens < 1:
        raise MultipltError(f"--max-new-tokens must be at least 1, got {max_new_tokens}")
    if not 0 < top_p <= 1 or not 0 <= temperature < float("inf"):  # NaN fails both
        raise MultipltError(f"bad sampling settings: temperature {temperature} (finite, >= 0), top_p {top_p} (0, 1]")
    for flag, value in (("--batch-size", batch_size), ("--concurrency", concurrency)):
        if value is not None and value < 1:
            raise MultipltError(f"{flag} must be at least 1, got {value}")
    if epoch is not None and epoch < 0:
        raise MultipltError(f"--epoch must be >= 0 (0 = the base model), got {epoch}")
    if seed is not None and not SEED_RANGE[0] <= seed < SEED_RANGE[1]:
        raise MultipltError(f"--seed must be in [-2**63, 2**63), got {seed}")


def checkpoint_labels(model: str | None, revision: str | None, experiment: str | None,
                      epoch: int | None) -> dict:
    """The run record's labels: `experiment` and `epoch` as given, or, when the model is a
    checkpoint of a training output (`--model OUT --revision TAG` or `--model
    OUT/checkpoints/TAG`: model_source.checkpoint_of), its manifest row's, with `checkpoint_uri`;
    a checkpoint loaded by its folder also gets `training_output` and `checkpoint_tag`, under
    which `results record` stores it (model OUT, revision TAG, as the other way and the DAG
    name it). A label given that contradicts the manifest row is an error naming both values:
    the run would be recorded as another epoch (`--epoch 0`: the base model) or experiment."""
    from multiplt.generation.model_source import checkpoint_of

    checkpoint = checkpoint_of(model, revision)
    if checkpoint is None:
        return {"experiment": experiment, "epoch": epoch}
    for flag, given, there in (("--epoch", epoch, checkpoint.epoch),
                               ("--experiment", experiment, checkpoint.experiment)):
        if given is not None and given != there:
            raise MultipltError(f"{flag} {given} contradicts the checkpoint: {checkpoint.tag} of "
                                f"{checkpoint.out} is {flag[2:]} {there} in its manifest; leave "
                                f"{flag} out (a checkpoint's run takes its manifest's) or give {there}")
    labels = {"experiment": checkpoint.experiment, "epoch": checkpoint.epoch,
              "checkpoint_uri": checkpoint.uri}
    if not revision:
        labels.update(training_output=checkpoint.out, checkpoint_tag=checkpoint.tag)
    return labels


def check_replay_source(backend: str, replay_source: str | None) -> None:
    """--replay-source goes with --backend replay only: another backend would ignore it (generate,
    evaluate, testgen and translate, and the DAGs' first task, check it the same way)."""
    if backend != "replay" and replay_source:
        raise MultipltError(f"--replay-source is for --backend replay only; --backend {backend} "
                            "samples from --model")


def check_backend_source(backend: str, model: str | None = None, revision: str | None = None,
                         tokenizer: str | None = None, replay_source: str | None = None,
                         tokenizer_revision: str | None = None) -> None:
    """MultipltError naming what the backend will not be able to load, found without loading
    any weights (what testgen, translate and evaluate check before they first write): the model
    of the transformers and vllm backends and the --tokenizer of any backend but replay (which
    loads none), resolved as the backend
    resolves them (model_source.resolve_model: a folder or storage URI must hold a model, a
    mistyped URI is named, a Hub name is fetched into the Hub cache, or found there offline), and
    the replay backend's source, read and checked as the backend reads it. The openai backend's
    model is the server's name for it: the server says whether it knows it. A Hub --tokenizer is
    resolved at `tokenizer_revision` (--tokenizer-revision, model_source.check_tokenizer_revision)."""
    from multiplt.generation.model_source import check_tokenizer_revision, resolve_model

    check_tokenizer_revision(tokenizer, tokenizer_revision)

    if backend == "replay":
        from multiplt.generation.replay import load_replay

        load_replay(replay_source)
        return
    if backend in ("transformers", "vllm") and model:
        resolve_model(model, revision)
    if tokenizer:
        resolve_model(tokenizer, tokenizer_revision, what="tokenizer")


def selected_names(problems) -> list[str] | None:
    """The problem names a --problems value (comma-separated, or a list) selects; None (not
    given) selects all. One that names none (`--problems ,`, "") is an error: it would make a run
    of 0 problems that succeeds."""
    if problems is None:
        return None
    wanted = [p for p in (problems.split(",") if isinstance(problems, str) else problems) if p]
    if not wanted:
        raise MultipltError(f"--problems {problems!r} names no problem; give comma-separated problem "
                            "names, or leave --problems out for all of them")
    return wanted


def load_benchmark(uri: str, limit: int | None = None,
                   problems=None) -> tuple[list[dict], str, list[str]]:
    """The selected problems of a benchmark JSONL file, the file's sha256 and the names of all
    its problems in file order."""
    if not storage.exists(uri):
        raise MultipltError(f"benchmark {uri} does not exist")
    data = storage.read_bytes(uri)
    rows = read_records(uri)  # a record with a key twice is refused: json keeps the last silently
    if not rows:
        raise MultipltError(f"benchmark {uri} holds no problems")
    seen = set()
    for i, row in enumerate(rows):
        where = f"benchmark {uri} record {i + 1}"
        missing = [k for k in REQUIRED if k not in row]
        if missing:
            raise MultipltError(f"{where} lacks field(s) {', '.join(missing)}")
        why = folder.unsafe_name(row["name"])
        if why:
            raise MultipltError(f"{where}: name {row['name']!r} {why}")
        if row["name"] in seen:
            raise MultipltError(f"{where}: problem {row['name']!r} appears twice")
        seen.add(row["name"])
        wrong = [k for k in ("language", "prompt", "tests") if not isinstance(row[k], str)]
        if wrong:
            raise MultipltError(f"{where}: field(s) {', '.join(wrong)} must be strings")
        _check_language(where, row["language"], rows[0]["language"])
        stops = row["stop_tokens"]
        if not isinstance(stops, list) or not all(isinstance(t, str) and t for t in stops):
            raise MultipltError(f"{where}: stop_tokens must be a list of non-empty strings, got {stops!r}")
    _warn_unknown_language(uri, rows[0]["language"])
    names = [r["name"] for r in rows]
    wanted = selected_names(problems)
    if wanted is not None:
        known = {r["name"] for r in rows}
        unknown = [p for p in wanted if p not in known]
        if unknown:
            raise MultipltError(f"--problems names unknown problem(s) of {uri}: {', '.join(unknown)}")
        rows = [r for r in rows if r["name"] in set(wanted)]
    if limit is not None:
        if limit < 1:
            raise MultipltError(f"--limit must be at least 1, got {limit}")
        rows = rows[:limit]
    return rows, hashlib.sha256(data).hexdigest(), names


def _check_language(where: str, language: str, first: str) -> None:
    """MultipltError unless a record's `language` is that of the file's first record: a run
    folder of two languages would be scored as one pass@k and recorded as both (`lang: lua,rkt`)."""
    if not language:
        raise MultipltError(f"{where}: language is empty")
    if language != first:
        raise MultipltError(f"{where}: language {language!r} is not record 1's {first!r}; a "
                            "benchmark file holds one language (its run folder is scored as one "
                            "pass@k): give one file per language")


def _warn_unknown_language(uri: str, language: str) -> None:
    """A language multiplt does not execute (not a code or name of multiplt.languages) is
    generated, with a warning: a MultiPL-E benchmark of another language (humaneval-js) can be
    sampled here and executed by MultiPL-E's own harness; `multiplt execute` refuses it."""
    from multiplt import languages

    try:
        languages.get(language)
    except MultipltError as exc:
        LOG.warning("benchmark %s: %s; generating anyway (multiplt execute will refuse it)", uri, exc)


def generate(benchmark: str, out: str, *, backend: str = "transformers", model: str | None = None,
             revision: str | None = None, tokenizer: str | None = None, n: int = 20,
             temperature: float = 0.2, top_p: float = 0.95, max_new_tokens: int = 512,
             batch_size: int | None = None, seed: int = 0, limit: int | None = None, problems=None,
             experiment: str | None = None, epoch: int | None = None,
             tokenizer_revision: str | None = None, **backend_options) -> dict:
    """Generate the missing samples into `out`; returns counts {problems, generated, written}.
    `tokenizer_revision`: the revision of a Hub `tokenizer`, part of the folder's run identity
    (the record's `tokenizer_revision`, written only when given: folder.PINNED_IDENTITY). With a
    `tokenizer`, the record also says what it was resolved to, `tokenizer_resolved_commit` (a Hub
    tokenizer's commit, from the backend that loaded it: hf_backend.TokenizerDescription). What
    the model holds is part of the folder's identity: `model_identity` (a Hub model's
    `resolved_commit`, a model folder's content digest, a replay source's sha256) must be the
    folder's (folder.MODEL_IDENTITY); a local model's is checked before its weights load, a Hub
    model's before (when the Hub says which commit the revision is at) and after. So is what a
    separate `tokenizer` holds, `tokenizer_identity` (a Hub tokenizer's commit, its
    tokenizer_resolved_commit; a local or storage one's tokenizer files' digest:
    folder.TOKENIZER_IDENTITY), checked the same way: a run after a Hub tokenizer's branch moved
    is refused, as one after the model's moved."""
    from multiplt.generation.model_source import check_tokenizer_revision
    from multiplt.training.config import check_experiment

    check_tokenizer_revision(tokenizer, tokenizer_revision)

    if experiment is not None:  # results record would refuse the run
        check_experiment(experiment)
    check_sampling(n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                   batch_size=batch_size, concurrency=backend_options.get("concurrency"), epoch=epoch,
                   seed=seed)
    labels = checkpoint_labels(model, revision, experiment, epoch)  # reads a training manifest
    rows, bench_sha, names = load_benchmark(benchmark, limit, problems)
    lang = rows[0]["language"]  # the file's one language (load_benchmark)
    select = selection_of(benchmark, lang, names, out)
    selected = [r["name"] for r in rows]
    run = {"model": model, "revision": revision, "resolved_commit": None, "tokenizer": tokenizer or model,
           **({"tokenizer_revision": tokenizer_revision} if tokenizer_revision is not None else {}),
           # what a --tokenizer was resolved to (describe() fills it; None: a local one, or a
           # backend that loads none), replaced at each run
           **({"tokenizer_resolved_commit": None} if tokenizer else {}),
           "benchmark": benchmark, "benchmark_sha256": bench_sha,
           # what `results record` names the benchmark by (merge_run: of every run's problems)
           "selection": select(selected), "lang": lang, "n": n,
           "temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens,
           "seed": seed, "backend": backend, **labels,  # experiment, epoch (and a checkpoint's)
           # score names a selected problem whose file is gone; merge_run keeps every run's
           "problems": selected}
    folder.merge_run(out, run, select)  # refuse a folder of another run before any work

    funnel = Funnel("generate")
    records, todo = {}, []
    # per problem, the samples finished ahead of an earlier one: {index: completion}
    waiting: dict[str, dict[int, str]] = {}
    for row in rows:
        wanted = {"name": row["name"], "language": row["language"], "prompt": row["prompt"],
                  "tests": row["tests"], "completions": [], "stop_tokens": list(row["stop_tokens"]),
                  "temperature": temperature, "top_p": top_p, "max_tokens": max_new_tokens}
        existing = folder.read_problem(out, row["name"])
        ahead: dict[int, str] = {}  # samples an interrupted run finished ahead of an earlier one
        if existing is not None:
            folder.check_same_problem(folder.problem_uri(out, row["name"]), existing, wanted,
                                      benchmark)
            wanted["completions"] = list(existing["completions"])
            ahead = folder.pending_of(existing)
        have = len(wanted["completions"])
        records[row["name"]] = wanted
        waiting[row["name"]] = ahead
        todo += [Request(row["name"], row["prompt"], i) for i in range(have, n) if i not in ahead]
        if have >= n:
            funnel.drop("already complete")
        else:
            funnel.keep()
    summary = {"problems": len(rows), "generated": 0, "written": 0, "folder": out}
    if not todo:
        # nothing to draw, so nothing loads; but a replay source costs one read to name: one
        # that holds something else now than the samples were read from is refused, not
        # reported as if the folder's samples were its own (gone: nothing to compare)
        source = backend_options.get("replay_source")
        if backend == "replay" and source and storage.exists(source):
            from multiplt.generation.replay import read_replay

            folder.merge_run(out, {**run, folder.MODEL_IDENTITY: read_replay(source)[1]}, select)
        LOG.info("generate: all %d problems already have %d completions in %s", len(rows), n, out)
        _mark_complete_if_whole(out, select)
        funnel.log(LOG)
        return summary

    identity = _identity_before_load(out, run, select, backend, model, revision, tokenizer,
                                     tokenizer_revision)
    if batch_size is not None:  # an optional cap; each backend has its own default
        backend_options["batch_size"] = batch_size
    engine = make_backend(backend, model=model, revision=revision, tokenizer=tokenizer,
                          tokenizer_revision=tokenizer_revision, **backend_options)
    try:
        described = engine.describe().as_record()
        identity = _loaded_identity(identity, described)
        # `provenance`: the code and libraries of the run that draws samples now (the last one
        # that drew any: a run with nothing to draw writes no record); no part of the identity
        final_run = folder.merge_run(out, {**run, **described, "model": model, "revision": revision,
                                           "tokenizer": tokenizer or model,
                                           **identity,
                                           "provenance": provenance.describe(provenance.GENERATION)},
                                     select)
        # `complete: false` goes with the first samples and `true` when this call has them all
        # and so does every file of the folder (finish): score refuses a folder whose last
        # generate did not finish (interrupted, or failed), or that another generate still fills
        final_run = {**(final_run or folder.read_run(out)), "complete": False}
        # the run record is written with the first finished samples: a run that fails before
        # producing anything leaves the folder as it was
        by_stop: dict[tuple, list[Request]] = {}
        for req in todo:
            by_stop.setdefault(tuple(records[req.problem]["stop_tokens"]), []).append(req)
        bar = progress(total=len(todo), desc="generate", unit="sample")
        for stop, reqs in by_stop.items():
            sampling = Sampling(temperature, top_p, max_new_tokens, stop, seed)
            for group in engine.generate(reqs, sampling):
                fresh = set()  # the problems that got a sample their file may lack
                for req, text in group:
                    ahead = waiting[req.problem]
                    if req.index >= len(records[req.problem]["completions"]) and req.index not in ahead:
                        ahead[req.index] = text  # else a file has it
                        fresh.add(req.problem)
                for name in sorted(fresh):
                    comps, ahead = records[name]["completions"], waiting[name]
                    while len(comps) in ahead:  # keep completions[i] == sample i
                        comps.append(ahead.pop(len(comps)))
                    # every finished sample is written (the ones ahead of an earlier one wait
                    # under multiplt_pending), so an interrupted run loses none of them
                    with folder.locked(out):  # read-merge-write: another generate may write too
                        if final_run is not None:
                            folder.write_run(out, final_run, select)
                            final_run = None
                        merged, ahead, wrote = folder.add_samples(
                            out, folder.with_pending(records[name], ahead), benchmark)
                    records[name]["completions"], waiting[name] = merged, ahead
                    summary["written"] += int(wrote)
                summary["generated"] += len(group)
                bar.update(len(group))
        bar.close()
        if final_run is None:  # samples were written: the record says incomplete until now
            with folder.locked(out):
                short = folder.finish(out, run["problems"], select)
            if short:
                _log_short(out, short)
    finally:
        engine.close()
    funnel.log(LOG)
    return summary


def _identity_before_load(out: str, run: dict, select: folder.Selection, backend: str,
                          model: str | None, revision: str | None, tokenizer: str | None = None,
                          tokenizer_revision: str | None = None) -> dict[str, str]:
    """The identities found before anything loads, {folder.MODEL_IDENTITY: ...,
    folder.TOKENIZER_IDENTITY: ...} (each only when known), checked against the folder's record
    here, so a folder of other weights or another tokenizer is refused before they load. The
    model's: a local folder's or storage URI's content digest (model_source.model_identity; a
    storage URI is downloaded into the cache here, where the backend then finds it), or, when
    the folder records an identity, the commit a Hub model's revision is at now (asked of the
    Hub; the commit the backend loads is checked again after); none for a Hub model otherwise,
    the openai backend (the server's model) and the replay backend (its source's digest comes
    with the completions read: _loaded_identity). A separate `tokenizer`'s, with the backends
    that load it (transformers, vllm, openai; not replay), likewise
    (model_source.tokenizer_identity, at `tokenizer_revision`)."""
    from multiplt.generation.model_source import model_identity, tokenizer_identity

    recorded = folder.read_run(out) or {}
    identity = {}
    if backend in ("transformers", "vllm") and model:
        identity[folder.MODEL_IDENTITY] = model_identity(
            model, revision, ask_hub=bool(recorded.get(folder.MODEL_IDENTITY)))
    if backend in ("transformers", "vllm", "openai") and tokenizer:
        identity[folder.TOKENIZER_IDENTITY] = tokenizer_identity(
            tokenizer, tokenizer_revision, ask_hub=bool(recorded.get(folder.TOKENIZER_IDENTITY)))
    identity = {key: value for key, value in identity.items() if value is not None}
    if identity:
        folder.merge_run(out, {**run, **identity}, select)
    return identity


def _loaded_identity(before: dict[str, str], described: dict) -> dict[str, str]:
    """The identities of what the backend loaded, which the run record keeps (each only when
    known). The model's (folder.MODEL_IDENTITY): the replay source's digest of the completions
    it read (its description's), the commit a Hub model was loaded at (`resolved_commit`, which
    may differ from the one asked of the Hub before: a branch can move in between), else the
    content digest found before the load; none when nothing says (the openai backend). A
    separate tokenizer's (folder.TOKENIZER_IDENTITY): the commit a Hub tokenizer was loaded at
    (`tokenizer_resolved_commit`), else the digest found before the load."""
    identity = {}
    if described.get(folder.MODEL_IDENTITY):
        identity[folder.MODEL_IDENTITY] = described[folder.MODEL_IDENTITY]
    else:
        identity[folder.MODEL_IDENTITY] = _after_load(before.get(folder.MODEL_IDENTITY),
                                                      described.get("resolved_commit"))
    identity[folder.TOKENIZER_IDENTITY] = _after_load(before.get(folder.TOKENIZER_IDENTITY),
                                                      described.get("tokenizer_resolved_commit"))
    return {key: value for key, value in identity.items() if value is not None}


def _after_load(before: str | None, commit: str | None) -> str | None:
    """A model's or tokenizer's identity once it loaded: a local folder's or storage URI's content
    digest found before (`before`, `sha256:...`: the storage URI's `commit` is an ETag digest,
    no Hub commit), else the Hub commit it was loaded at, else `before`."""
    if before is not None and not before.startswith("commit:"):
        return before
    return f"commit:{commit}" if commit else before


def selection_of(benchmark: str, lang: str, names: list[str], out: str) -> folder.Selection:
    """The run record's `selection` of a list of problems the generates into `out` selected from
    the benchmark file `benchmark` (its problems: `names`, in file order): which part of the
    file they are, as `results record` names the run's benchmark (run_folder.benchmark_selection,
    with the file's build report and `out`'s name read once here). Kept in the record, so the
    benchmark file need not be there, nor unchanged, when the run is recorded; the record's
    benchmark_sha256 makes every generate into one folder read the same file."""
    from multiplt.evaluation.run_folder import (benchmark_selection, built_marker, file_benchmark,
                                                folder_markers)

    name = file_benchmark(benchmark, lang)
    built, in_folder = built_marker(benchmark), folder_markers(name, storage.basename(out))[0]
    return lambda selected: benchmark_selection(name, built, names, selected, in_folder)


def _mark_complete_if_whole(out: str, select: folder.Selection) -> None:
    """A call with nothing to do finishes a record that says `complete: false` when the folder is
    whole (folder.finish: every problem the record lists as selected and every problem file there
    holds at least the record's n, the most any run asked for), e.g. a zombie try killed after
    its retry had finished the folder. A folder still short stays false: a smaller --n than a cut
    run's does not make it scoreable. A record that says true, or none, is left as it is (a
    rerun writes nothing)."""
    run = folder.read_run(out)
    if run is None or run.get("complete") is not False:
        return
    with folder.locked(out):  # it wrote no samples, so it adds no problem to the record's list
        short = folder.finish(out, [], select)
    if short:
        _log_short(out, short, level=logging.INFO)


def _log_short(out: str, short: list[tuple[str, int, int]], level: int = logging.WARNING) -> None:
    shown = ", ".join(f"{name} ({have} of {n})" for name, have, n in short[:3])
    n = short[0][2]
    LOG.log(level, "generate: %s's run record stays complete: false: %d problem(s) hold fewer than "
            "its n=%d completions, e.g. %s (another generate into the folder may still be writing "
            "them, or one was cut short); score refuses it until `multiplt generate --n %d` "
            "finishes them", out, len(short), n, shown, n)
