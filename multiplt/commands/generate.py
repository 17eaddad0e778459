"""`multiplt generate`: completions for a benchmark file, into a MultiPL-E completion folder."""

from __future__ import annotations

import argparse

from multiplt.generation.backends import NAMES, TOKENIZER_HELP


def add_generate_args(p: argparse.ArgumentParser, benchmark_required: bool = True) -> None:
    """Flags shared by `generate` and `evaluate` (evaluate passes them to each language's
    generate)."""
    if benchmark_required:
        p.add_argument("--benchmark", required=True, help="benchmark JSONL URI (multiplt benchmark build)")
    p.add_argument("--model", help="Hub name, local folder, storage URI (s3://, file://) or training output")
    p.add_argument("--revision", help="Hub branch/tag/commit, or a training-manifest tag (LANG-EXPERIMENT-epochN)")
    p.add_argument("--tokenizer", help=TOKENIZER_HELP)
    p.add_argument("--tokenizer-revision", metavar="REV",
                   help="Hub branch/tag/commit of a Hub --tokenizer (default: its default "
                   "branch); recorded in the run folder's run record, which a later run into the "
                   "folder must match; not for a local or storage-URI --tokenizer, nor "
                   "without --tokenizer")
    p.add_argument("--backend", default="transformers", choices=NAMES)
    p.add_argument("--n", type=int, default=20, help="samples per problem (default 20)")
    p.add_argument("--temperature", type=float, default=0.2)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--max-new-tokens", type=int, default=512, help="limit on NEW tokens per sample")
    p.add_argument("--batch-size", type=int, help="optional cap on the sequences in flight (default: "
                   "as many as memory allows, with continuous batching)")
    p.add_argument("--seed", type=int, default=0, help="run seed; sample i of problem p uses (seed, p, i)")
    p.add_argument("--limit", type=int, help="only the first N problems of the benchmark file, whose order "
                   "(multiplt benchmark build) is name (string) order, not numeric: "
                   "HumanEval_0_has_close_elements, HumanEval_100_make_a_pile, HumanEval_101_words_string, ...")
    p.add_argument("--problems", help="comma-separated problem names")
    p.add_argument("--experiment", help="label stored in the run record (e.g. multiplt; default for a "
                   "checkpoint of a training output: its manifest's, which another value contradicts)")
    p.add_argument("--epoch", type=int, help="label stored in the run record (0 = base model; default "
                   "for a checkpoint of a training output: its manifest's, which another value "
                   "contradicts; else none, recorded as 0)")
    p.add_argument("--api-base", help="openai backend: server URL, e.g. http://host:8000/v1")
    p.add_argument("--concurrency", type=int, help="openai backend: parallel requests (default: --batch-size, else 16)")
    p.add_argument("--replay-source", help="replay backend: completion folder or JSONL of name+completion "
                   "(evaluate: {lang} in it becomes each language code)")


def generate_kwargs(args) -> dict:
    return dict(backend=args.backend, model=args.model, revision=args.revision,
                tokenizer=args.tokenizer, n=args.n, temperature=args.temperature, top_p=args.top_p,
                max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, seed=args.seed,
                limit=args.limit, problems=args.problems, experiment=args.experiment,
                epoch=args.epoch, api_base=args.api_base, concurrency=args.concurrency,
                replay_source=args.replay_source, tokenizer_revision=args.tokenizer_revision)


def model_label(args) -> str:
    """The model a run is recorded (and evaluate's run folder named) under: --model, or for the
    replay backend without one the replay source's name and a hash of it (replay.replay_label:
    `results record` needs a model, and two sources of one name are two models). Checked here,
    before any work: --replay-source without the replay backend (the others would ignore it),
    the replay backend without it, another backend without --model."""
    from multiplt.errors import MultipltError

    from multiplt.generation.driver import check_replay_source

    check_replay_source(args.backend, args.replay_source)
    if args.backend != "replay":
        if not args.model:
            raise MultipltError("--model is required (except with --backend replay)")
        return args.model
    if not args.replay_source:
        raise MultipltError("the replay backend needs --replay-source (a completion folder or JSONL)")
    from multiplt.generation.replay import replay_label

    return args.model or replay_label(args.replay_source)


def register(subparsers) -> None:
    p = subparsers.add_parser("generate", help="sample completions for a benchmark (MultiPL-E files)",
                              description=__doc__)
    add_generate_args(p)
    p.add_argument("--out", required=True, help="completion folder URI")
    p.set_defaults(func=run)


def run(args) -> int:
    from multiplt.generation.driver import generate
    from multiplt.storage.outputs import check_out

    check_out(args.out)  # before the benchmark is read and any path is made from it
    label = model_label(args)
    if args.backend == "replay" and not args.model:  # the folder's own label for this source
        from multiplt.generation.replay import recorded_label

        label = recorded_label(args.out, args.replay_source) or label
    summary = generate(args.benchmark, args.out, **{**generate_kwargs(args), "model": label})
    print(f"generate: {summary['generated']} samples for {summary['problems']} problems in {args.out}")
    return 0
