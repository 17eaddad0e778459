"""`multiplt publish dataset|checkpoints|results`: put datasets, tagged checkpoints and the
results store on the Hugging Face Hub (docs/publishing.md)."""

from __future__ import annotations

import argparse
import json

LICENSE_HELP = "license field of the card (default: bigcode-openrail-m, as nuprl/MultiPL-T)"
PRIVATE_HELP = ("create the repo private; an existing repo must be private already: a public one is "
                "refused (exit 2, nothing uploaded), its visibility is never changed")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "publish", help="publish datasets, tagged checkpoints or results to the Hugging Face Hub",
        description="Upload to the Hugging Face Hub with a generated card. The token comes from "
        "HF_TOKEN (in Airflow: the connection huggingface_default). Reruns upload only what "
        "changed; Hub errors 408/429/5xx and network errors are retried with backoff.")
    sub = parser.add_subparsers(dest="publish_command", metavar="WHAT", required=True)

    ds = sub.add_parser("dataset", help="a folder of data/<split>-*.parquet as a Hub dataset",
                        description="One split per language, with a dataset card (splits, row "
                        "counts, license, the funnel of every stage, models and sampling, how to load; "
                        "places named NAME~HASH). A repo holds one source folder's dataset: the same "
                        "folder again updates it, another folder is refused unless --force.")
    ds.add_argument("--from", dest="source", required=True, metavar="URI",
                    help="dataset folder (the translate stage's output)")
    ds.add_argument("--repo", required=True, metavar="OWNER/NAME")
    ds.add_argument("--private", action="store_true", help=PRIVATE_HELP)
    ds.add_argument("--revision", default="main", metavar="BRANCH", help="branch to commit to")
    ds.add_argument("--dry-run", metavar="DIR", help="write what would be uploaded into DIR (new, empty or an "
                    "earlier dry run of the same repo); send nothing")
    ds.add_argument("--license", default=None, help=LICENSE_HELP)
    ds.add_argument("--force", action="store_true", help="replace the dataset of another source "
                    "folder that the repo (or the --dry-run folder) holds; without it that is refused")
    ds.set_defaults(func=run_dataset)

    ck = sub.add_parser("checkpoints", help="epoch checkpoints of training outputs, one tagged commit each",
                        description="Each checkpoint in the training manifest becomes one commit "
                        "tagged LANG-EXPERIMENT-epochN (bf16 safetensors, config, tokenizer); the "
                        "model card lists every checkpoint on the repo (this publication's and the "
                        "card's others) with the recipe, the dataset and pass@1 per epoch. The "
                        "training output gets published.json (the repo and its tags there).")
    ck.add_argument("--from", dest="outputs", action="append", required=True, metavar="TRAIN_OUT",
                    help="training output (holds manifest.jsonl); repeatable")
    ck.add_argument("--repo", required=True, metavar="OWNER/NAME")
    ck.add_argument("--tags", default="all", metavar="all|best|LIST",
                    help="all checkpoints, the best (pass@1, else eval loss, else the last epoch; "
                    "the choice is logged), or comma-separated tags")
    ck.add_argument("--force", action="store_true", help="move tags that exist with other files")
    ck.add_argument("--private", action="store_true", help=PRIVATE_HELP)
    ck.add_argument("--results-store", metavar="URI", help="results store for the pass@1 table "
                    "(without it the card keeps the pass@1 of the card on the Hub)")
    ck.add_argument("--license", default=None, help=LICENSE_HELP)
    ck.set_defaults(func=run_checkpoints)

    rs = sub.add_parser("results", help="the results store as a Hub dataset",
                        description="The results parquet and a card with pass@1 per model and language.")
    rs.add_argument("--store", required=True, metavar="URI")
    rs.add_argument("--repo", required=True, metavar="OWNER/NAME")
    rs.add_argument("--private", action="store_true", help=PRIVATE_HELP)
    rs.add_argument("--license", default=None, help=LICENSE_HELP)
    rs.set_defaults(func=run_results)


def _license(args) -> str:
    from multiplt.hub.cards import DEFAULT_LICENSE
    from multiplt.hub.repo_id import check_license

    return DEFAULT_LICENSE if args.license is None else check_license(args.license)


def _print(summary: dict) -> int:
    print(json.dumps(summary, sort_keys=True, default=str))
    return 0


def run_dataset(args: argparse.Namespace) -> int:
    from multiplt.hub.dataset import publish_dataset
    from multiplt.hub.repo_id import check_repo_id, check_revision

    repo = check_repo_id(args.repo)
    revision = check_revision(args.revision)
    license = _license(args)
    # the library refuses a missing token (not needed by a dry run) before it reads anything
    return _print(publish_dataset(args.source, repo, private=args.private, revision=revision,
                                  dry_run=args.dry_run, license=license, force=args.force))


def run_checkpoints(args: argparse.Namespace) -> int:
    from multiplt.hub.checkpoints import publish_checkpoints
    from multiplt.hub.repo_id import check_repo_id

    repo = check_repo_id(args.repo)
    license = _license(args)
    # the library checks --tags and every --from, then the token, before it reads anything
    return _print(publish_checkpoints(args.outputs, repo, tags=args.tags, force=args.force,
                                      private=args.private, results_store=args.results_store,
                                      license=license))


def run_results(args: argparse.Namespace) -> int:
    from multiplt.hub.repo_id import check_repo_id
    from multiplt.hub.results import publish_results

    repo = check_repo_id(args.repo)
    license = _license(args)
    return _print(publish_results(args.store, repo, private=args.private, license=license))
