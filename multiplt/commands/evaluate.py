"""`multiplt evaluate`: benchmark build (when missing) + generate + execute + score, per language,
as one command. It writes exactly the files the separate commands write:
  BENCHMARKS/<source>-<lang>.jsonl (+ .report.json)        multiplt benchmark build
  OUT/<source>-<lang>-<model>-<revision>-<temperature>/   multiplt generate, execute, score
(<source>: `humaneval`, or another source's name (a JSONL file's name without its folder and
extension, a Hugging Face dataset's without its owner) and _s<hash of the source: a local
path made absolute first>, as the evaluate DAG names it, so two sources of one file name get
their own files and folders; in
the run folder with _p<hash> / _first<N> for --problems / --limit; <lang>: the language's code,
`rkt` for --lang racket)
and ends with a summary table of pass@k per language."""

from __future__ import annotations

import argparse

from multiplt.commands.generate import add_generate_args, generate_kwargs, model_label

SUMMARY_HEADER = ("lang", "pass@k", "estimate", "problems", "completions", "folder")


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="build, generate, execute and score in one command",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lang", required=True, help="comma-separated language codes, e.g. rkt,lua")
    p.add_argument("--source", default="humaneval", help="benchmark source (default humaneval)")
    p.add_argument("--out", required=True, help="root URI; one run folder per language goes below it")
    p.add_argument("--benchmarks", help="folder of benchmark files (default OUT/benchmarks)")
    add_generate_args(p, benchmark_required=False)
    p.add_argument("--workers", type=int, help="execute: parallel programs")
    p.add_argument("--timeout", type=float, help="execute: seconds per program (default: the language's)")
    p.add_argument("--unsafe-no-sandbox", action="store_true", help="execute: run programs unsandboxed")
    p.add_argument("--k", default="1", help="score: comma-separated k values for pass@k (default 1)")
    p.set_defaults(func=run)


def _check_built(bench: str, source: str, code: str) -> None:
    """MultipltError when `bench` exists with a report (`multiplt benchmark build` writes one
    beside it) saying it was built from another source or language, or from part of the source;
    a file without a report (one the user put there) is taken as it is."""
    from multiplt import storage
    from multiplt.errors import MultipltError

    from multiplt.benchmarks.build import built_report

    if not storage.exists(bench):
        return
    config = (built_report(bench) or {}).get("config") or {}  # refuses a report of another file
    if not config and not storage.exists(bench + ".report.json"):
        return
    built = (config.get("source"), config.get("lang"), config.get("limit"), config.get("problems"))
    if built != (source, code, None, None):
        raise MultipltError(f"{bench} was built from source {built[0]!r}, language {built[1]!r}"
                            f"{', limit ' + str(built[2]) if built[2] else ''}"
                            f"{', problems ' + str(built[3]) if built[3] else ''}, not from all of "
                            f"{source!r} in {code!r}; remove it or give another --benchmarks folder")


def _replay_source(replay_source: str, code: str) -> str:
    """A language's replay source: `{lang}` in --replay-source is its code."""
    return replay_source.replace("{lang}", code)


def _needs_samples(bench: str, folder: str, args) -> bool:
    """Whether generate will sample into the language's run folder `folder`, found as generate
    finds it (driver.load_benchmark's selection of the benchmark file `bench`, and each selected
    problem's file in the folder, folder.read_problem, holding fewer than --n completions); True
    while the benchmark is not built (its problems are known only once it is)."""
    from multiplt import storage
    from multiplt.generation import folder as completions
    from multiplt.generation.driver import load_benchmark

    if not storage.exists(bench):
        return True
    for row in load_benchmark(bench, args.limit, args.problems)[0]:
        existing = completions.read_problem(folder, row["name"])
        if existing is None or len(existing["completions"]) < args.n:
            return True
    return False


def run(args) -> int:
    from multiplt import storage
    from multiplt.errors import MultipltError
    from multiplt.evaluation.run_folder import run_folder_name
    from multiplt.log import progress
    from multiplt.storage.outputs import check_out

    check_out(args.out)  # before the run folders' paths are made from it
    from multiplt import languages
    from multiplt.benchmarks.sources import absolute_source, benchmark_name

    # an unknown code is an error before any work; a name (`racket`) is its code (`rkt`) in
    # every file and folder name, as in the benchmark's build report and the results store
    langs = languages.codes(args.lang, "--lang")
    # every setting is checked here, before a benchmark is built or a sample drawn
    from multiplt.commands.score import parse_ks
    from multiplt.execution.executor import check_options
    from multiplt.generation.driver import check_sampling, checkpoint_labels, selected_names
    from multiplt.generation.model_source import check_tokenizer_revision

    ks = tuple(parse_ks(args.k, "--k"))
    check_sampling(n=args.n, temperature=args.temperature, top_p=args.top_p,
                   max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                   concurrency=args.concurrency, epoch=args.epoch, seed=args.seed)
    if min(ks) > args.n:
        raise MultipltError(f"--k {args.k}: no k is at most --n {args.n}, so no pass@k could be scored")
    if args.limit is not None and args.limit < 1:
        raise MultipltError(f"--limit must be at least 1, got {args.limit}")
    selected_names(args.problems)  # `--problems ,` names none: refused before the build
    check_options(args.workers, args.timeout)
    check_tokenizer_revision(args.tokenizer, args.tokenizer_revision)  # as generate checks it
    label = model_label(args)
    # a checkpoint's --epoch/--experiment that contradict its training manifest: refused here
    checkpoint_labels(args.model, args.revision, args.experiment, args.epoch)
    bench_root = args.benchmarks or storage.join(args.out, "benchmarks")
    check_out(bench_root, flag="--benchmarks")  # before a benchmark is built into it
    # `data/mbpp.jsonl` -> `mbpp_s<hash of the source>`, as the DAG names it: another source of
    # one file name gets its own benchmark file and run folders (the results store strips the hash)
    # a relative path names the file it is from here: the same spelling from another folder is
    # another file, with its own benchmark file and run folders
    source = absolute_source(args.source)
    name = benchmark_name(source)
    for code in langs:  # a benchmark built earlier is reused: only if built the way this run would
        _check_built(storage.join(bench_root, f"{name}-{code}.jsonl"), source, code)
    # --limit/--problems mark the folder (as the DAG's): a folder shared with a run of other
    # problems would be scored over both runs' problems
    folders = {code: storage.join(args.out, run_folder_name(
        benchmark_name(source, args.limit, args.problems), code, label, args.revision,
        args.temperature)) for code in langs}
    # last (a Hub model is fetched): the model and tokenizer resolved (no weights loaded), or
    # each language's replay source read, so that a mistyped --model is refused before a
    # benchmark is built; only where a language's run folder still needs samples (a rerun of
    # a finished run executes and scores again without the model, as generate would)
    from multiplt.generation.driver import check_backend_source

    sampling = [code for code in langs
                if _needs_samples(storage.join(bench_root, f"{name}-{code}.jsonl"), folders[code], args)]
    sources = ([_replay_source(args.replay_source, code) for code in sampling]
               if args.backend == "replay" else [None] * bool(sampling))
    for replay in dict.fromkeys(sources):
        check_backend_source(args.backend, args.model, args.revision, args.tokenizer, replay,
                             tokenizer_revision=args.tokenizer_revision)
    # then every language's runtime, installed and working (the executor's preflight), before a
    # benchmark is built or a sample drawn: a missing one is bad setup (exit 2), found before
    # the other languages' GPU time rather than after it
    from multiplt.execution.preflight import check_runtimes

    check_runtimes([languages.get(code) for code in langs], args.unsafe_no_sandbox,
                   what="the completions")
    rows = []
    bar = progress(total=4 * len(langs), desc="evaluate", unit="stage")
    for code in langs:
        bench = storage.join(bench_root, f"{name}-{code}.jsonl")
        if not storage.exists(bench):  # build_benchmark writes this file last
            from multiplt.benchmarks.build import build_benchmark

            bar.set_postfix(stage=f"{code} benchmark")
            build_benchmark(source, code, bench)
        bar.update(1)
        folder = folders[code]
        bar.set_postfix(stage=f"{code} generate")
        from multiplt.generation.driver import generate

        kwargs = {**generate_kwargs(args), "model": label}
        if kwargs.get("replay_source"):  # one replay folder per language: --replay-source DIR/{lang}
            kwargs["replay_source"] = _replay_source(kwargs["replay_source"], code)
        generate(bench, folder, **kwargs)
        bar.update(1)
        bar.set_postfix(stage=f"{code} execute")
        from multiplt.execution.executor import execute

        execute(folder, workers=args.workers, timeout=args.timeout,
                unsafe_no_sandbox=args.unsafe_no_sandbox, labels=("evaluate's run folder",) * 2,
                private=(("--out", args.out),))
        bar.update(1)
        bar.set_postfix(stage=f"{code} score")
        from multiplt.evaluation.passk import score

        for row in score(folder, ks=ks):
            rows.append([code, row["Pass@k"], row["Estimate"], row["NumProblems"],
                         f"{row['MinCompletions']}-{row['MaxCompletions']}", folder])
        bar.update(1)
    bar.close()
    from multiplt.evaluation.run_folder import format_table

    print(format_table(SUMMARY_HEADER, rows))
    return 0
