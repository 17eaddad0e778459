"""Cards: the README.md of each published repo, YAML front matter plus Markdown.

Cards are a function of what is published (no dates), so publishing the same thing twice gives
the same card and uploads nothing. No card names a place of the deployment: a local path or
storage URI is its public name NAME~HASH (results.place_name), in the model card's recipe, the
results, and the dataset card's source and provenance (the stage folders it was made from)."""

from __future__ import annotations

import json
import re
from typing import NamedTuple

import yaml

from multiplt.results.benchmarks import benchmark_name

DEFAULT_LICENSE = "bigcode-openrail-m"  # nuprl/MultiPL-T's; override with --license
HF_DTYPES = {"String": "string", "Utf8": "string", "Int64": "int64", "Int32": "int32",
             "Float64": "float64", "Float32": "float32", "Boolean": "bool"}
SAMPLING_KEYS = ("language", "model", "revision", "backend", "n", "temperature", "top_p", "max_new_tokens",
                 "seed", "rouge_threshold")


def _front(meta: dict) -> str:
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def _table(header: list[str], rows: list[list]) -> str:
    fmt = lambda v: "" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _pct(value: float | None) -> str | None:
    return None if value is None else f"{value:.4f}"


def _loss(value) -> str | None:
    """An eval loss with 4 decimals, as pass@1 (4.2996 and 4.3000, not 4.3 beside 5.173)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return f"{float(value):.4f}"
    except (TypeError, ValueError):
        return str(value)


def _features(schema: dict) -> list[dict] | None:
    feats = [{"name": k, "dtype": HF_DTYPES.get(v)} for k, v in schema.items()]
    return feats if all(f["dtype"] for f in feats) else None


def _timeless(value):
    """A funnel without its wall-clock timings (`seconds`, `merge_seconds`, ...): they differ on
    every rebuild of the same data, and the card must not (a new Hub commit per identical run)."""
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items()
                if not (k == "seconds" or k.endswith("_seconds"))}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


def _funnel_lines(funnels: dict) -> str:
    out = []
    for name, value in sorted(_timeless(funnels).items()):
        out.append(f"`{name}`:\n\n```json\n{json.dumps(value, indent=1, sort_keys=True)}\n```\n")
    return "\n".join(out)


SOURCE_LINE = "Published by `multiplt publish dataset` from `{}`"
_SOURCE = re.compile(r"^Published by `multiplt publish dataset` from `([^`\n]+)`", re.M)
_MADE = "\n## How it was made\n"


def dataset_source(card: str) -> str | None:
    """The source folder a dataset card (dataset_card) names: the public name of its SOURCE_LINE;
    for a card written before it had one, the first folder of its "How it was made" (the
    source's own, as it was given then: a place, not its public name). None when it names
    neither (another card, a hand-written one, or a source without provenance files)."""
    found = _SOURCE.search(card)
    if found:
        return found[1]
    made = card.split(_MADE, 1)[1] if _MADE in card else ""
    first = re.search(r"^### `([^`\n]+)`$", made, re.M)
    return first[1] if first else None


def dataset_card(repo_id: str, rows: dict[str, int], schema: dict, stages: list[dict],
                 license: str, source: str | None = None) -> str:
    """The card of a published dataset: `rows` is {split: rows}; a split with 0 rows (not
    published: `datasets` cannot load an empty split) is named in the text, not in the YAML.
    `source`: the dataset folder's public name (dataset.source_name), which the card names
    (dataset_source reads it back). Every place in `stages` (the folders' URIs, a model given
    as a local path, a funnel's value) is shown as its public name NAME~HASH, as the model and
    results cards name places."""
    from multiplt.hub.results import public_places

    splits = sorted(s for s in rows if rows[s])
    empty = sorted(s for s in rows if not rows[s])
    meta = {"license": license, "pretty_name": repo_id.split("/")[1], "tags": ["code", "multipl-t"],
            "configs": [{"config_name": "default",
                         "data_files": [{"split": s, "path": f"data/{s}-*"} for s in splits]}]}
    info = {"splits": [{"name": s, "num_examples": rows[s]} for s in splits]}
    if _features(schema):
        info = {"features": _features(schema), **info}
    meta["dataset_info"] = info
    parts = [_front(meta), f"# {repo_id.split('/')[1]}\n",
             "Fine-tuning data for code LLMs in low-resource programming languages, made the "
             "MultiPL-T way: Python functions with tests, translated by an LLM, kept only where "
             "the translated tests pass. One split per language; the `content` column is the "
             "training text.\n",
             _table(["split", "rows"], [[s, rows[s]] for s in splits] + [["total", sum(rows.values())]]),
             (f"\n{', '.join(f'`{s}`' for s in empty)} kept no rows: not published.\n" if empty else ""),
             (f"\n{SOURCE_LINE.format(source)} (its folder's name and a hash of where it is "
              f"kept).\n" if source else ""),
             "\n## Load it\n",
             f"```python\nfrom datasets import load_dataset\n\nds = load_dataset(\"{repo_id}\", "
             f"split=\"{splits[0]}\")\n```\n"]
    if stages:
        parts.append(_MADE)
        for stage in stages:
            parts.append(f"\n### `{public_places(stage['uri'])}`\n")
            rows = []
            for config in stage["configs"].values():
                used = {k: public_places(config[k]) for k in SAMPLING_KEYS
                        if isinstance(config, dict) and config.get(k) not in (None, "")}
                if used and used not in rows:
                    rows.append(used)
            if rows:  # one row per distinct setting (the shards of a language share theirs)
                columns = [k for k in SAMPLING_KEYS if any(k in r for r in rows)]
                parts.append("Models and sampling:\n\n"
                             + _table(columns, [[r.get(k) for k in columns] for r in rows]) + "\n")
            if stage["funnels"]:
                parts.append("Funnel (records in, kept, dropped and why):\n\n"
                             + _funnel_lines(public_places(stage["funnels"])))
    return "".join(parts)


#: the settings of a model card's Recipe: `base_commit` is the commit a Hub base was trained from
#: (the run's record; `base_revision` the revision as given), and `dataset` names the training
#: data as `REPO@COMMIT` where it is on the Hub (a Hub dataset at the run's `dataset_commit`, or
#: a dataset folder published by `publish dataset`: the output config's `dataset_hub`)
RECIPE_KEYS = ("base", "base_revision", "base_commit", "dataset", "dataset_revision", "split", "recipe",
               "epochs", "lr", "lr_scheduler", "warmup_steps", "batch_size", "micro_batch_size", "seq_len",
               "weight_decay", "max_grad_norm", "precision", "seed")


def benchmark_label(benchmark: str | None, num_problems: tuple[int, ...] = ()) -> str:
    """`humaneval`, 164 problems; a benchmark the store does not name is said to be so."""
    name = f"`{benchmark}`" if benchmark else "unnamed in the results store"
    if not num_problems:
        return name
    count = (str(num_problems[0]) if len(num_problems) == 1
             else f"{min(num_problems)} to {max(num_problems)}")
    return f"{name}, {count} problems"


CHECKPOINT_COLUMNS = ["tag", "language", "epoch", "step", "eval loss", "pass@1"]
EMPTY_NOTE = "pass@1 is empty until the checkpoints are evaluated (`multiplt_evaluate`)."
NOT_LOOKED_UP = "(published without `--results-store`)"
_NOT_LOOKED_UP = re.compile(r"pass@1 was not looked up(?: for (.+))? " + re.escape(NOT_LOOKED_UP) + r"\.")


def pass1_note(passk: dict, benchmark: str | None = None, num_problems: tuple[int, ...] = ()) -> str:
    """The sentence under the checkpoint table about pass@1 read from a results store."""
    if not passk:
        return EMPTY_NOTE
    return (f"pass@1 is on one benchmark ({benchmark_label(benchmark, num_problems)}): the one on which "
            f"the most of these checkpoints were evaluated, so that the scores compare (a checkpoint "
            f"evaluated only on another benchmark has none here); per tag the latest recorded run.")


def not_looked_up_note(tags: list[str], all_tags: list[str]) -> str:
    """The sentence naming the checkpoints whose pass@1 was not looked up (no results store)."""
    which = "" if set(tags) >= set(all_tags) else f" for {', '.join(tags)}"
    return f"pass@1 was not looked up{which} {NOT_LOOKED_UP}."


class KeptPass1(NamedTuple):
    """What a model card on the Hub says of its checkpoints: `scores` {tag: pass@1} of its
    checkpoint table, `tags` all the tags of that table, `note` its sentence about the scores
    ("" when it has none), `not_looked_up` the tags it says were published without a results
    store, `rows` the table's rows ({"tag", "lang", "epoch", "step", "eval_loss"}, as written)
    and `recipes` {(lang, experiment): {setting: value}} of its Recipe section."""

    scores: dict[str, float]
    tags: frozenset
    note: str
    not_looked_up: frozenset
    rows: tuple = ()
    recipes: dict | None = None


_RECIPE_HEADER = re.compile(r"(\S+) / (\S+):")


def card_pass_at_1(card: str) -> KeptPass1 | None:
    """The checkpoint table, its pass@1 part and the recipes of a model card this module wrote
    (model_card), or None when `card` has no checkpoint table of that form (another card, or a
    hand-written one)."""
    lines = card.split("\n")
    header = "| " + " | ".join(CHECKPOINT_COLUMNS) + " |"
    if header not in lines:
        return None
    start = lines.index(header) + 2  # past the header and the |---| line
    end = start
    scores, tags, rows = {}, [], []
    while end < len(lines) and lines[end].startswith("|"):
        cells = [c.strip() for c in lines[end].strip().strip("|").split("|")]
        end += 1
        if len(cells) != len(CHECKPOINT_COLUMNS) or not cells[0]:
            return None
        tags.append(cells[0])
        rows.append({"tag": cells[0], "lang": cells[1], "epoch": cells[2], "step": cells[3] or None,
                     "eval_loss": cells[4] or None})
        try:
            if cells[-1]:
                scores[cells[0]] = float(cells[-1])
        except ValueError:
            return None
    rest = "\n".join(lines[end:]).split("\n## ", 1)[0]
    notes, unlooked = [], frozenset()
    for paragraph in (p.strip() for p in rest.split("\n\n")):
        found = _NOT_LOOKED_UP.fullmatch(paragraph)
        if found:
            unlooked = frozenset(found.group(1).split(", ") if found.group(1) else tags)
        elif paragraph.startswith("pass@1 "):
            notes.append(paragraph)
    return KeptPass1(scores, frozenset(tags), "\n\n".join(notes), unlooked, tuple(rows),
                     _recipes(card))


def _recipes(card: str) -> dict:
    """{(lang, experiment): {setting: value}} of a model card's Recipe section (model_card)."""
    recipes: dict = {}
    current = None
    section = card.split("\n## Recipe\n", 1)[1] if "\n## Recipe\n" in card else ""
    for line in section.split("\n"):
        header = _RECIPE_HEADER.fullmatch(line.strip())
        if header:
            current = recipes.setdefault((header[1], header[2]), {})
        elif current is not None and line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 2 and cells != ["setting", "value"]:
                current[cells[0]] = cells[1]
    return recipes


_NOTE_BENCHMARK = re.compile(r"pass@1 is on one benchmark \((?:`([^`]*)`|(unnamed) in the results store)")


def note_benchmark(note: str) -> str | None:
    """The benchmark a card's pass@1 sentence (pass1_note) names ("" when unnamed in the store),
    None when it names none."""
    found = _NOTE_BENCHMARK.match(note or "")
    if not found:
        return None
    return found[1] if found[1] is not None else ""


def _hub_id(value) -> bool:
    """Whether a recipe value may name a Hub repo: not a place of the deployment (a local path, a
    storage URI) nor the public name of one (results.place_name: NAME~HASH)."""
    from multiplt.hub.results import PLACE_MARK, is_place

    return isinstance(value, str) and bool(value) and not is_place(value) and PLACE_MARK not in value


def _dataset(config: dict):
    """The training data as a card names it: `REPO@COMMIT` where it is on the Hub (`dataset_hub`:
    checkpoints.dataset_on_hub), else the run's `dataset` (a Hub name, or a place)."""
    return config.get("dataset_hub") or config.get("dataset")


def model_card(repo_id: str, outputs: list[dict], passk: dict, license: str,
               benchmark: str | None = None, num_problems: tuple[int, ...] = (),
               note: str | None = None, not_looked_up: tuple[str, ...] = ()) -> str:
    """`outputs`: [{"config": resolved training config, "rows": manifest rows}] per training
    output (or per language and experiment of the card on main, as checkpoints.union_outputs
    keeps them; an output without recipe settings gets no Recipe entry), in table order;
    `passk`: {tag: pass@1} from the results store, all on `benchmark` (with `num_problems`
    problems; checkpoints.pass_at_1 picks it). `note`: the sentence under the
    table about pass@1 (default: pass1_note; "" none), `not_looked_up`: tags whose pass@1 was
    not looked up, named in a sentence after it (publication without a results store)."""
    bases = sorted({o["config"].get("base", "") for o in outputs if o["config"].get("base")})
    # Hub dataset names only (a REPO@COMMIT as its repo): a storage URI or a local path (training
    # stores them absolute) that was not published, or the public name the card gives one
    # (NAME~HASH, read back from the card's Recipe), is no `datasets:` entry and would show the
    # machine's folders
    datasets = sorted({_dataset(o["config"]).partition("@")[0] for o in outputs
                       if _hub_id(_dataset(o["config"]))})
    langs = sorted({r["lang"] for o in outputs for r in o["rows"]})
    meta = {"license": license, "library_name": "transformers", "tags": ["code", "multipl-t", *langs]}
    if len(bases) == 1 and _hub_id(bases[0]):
        meta["base_model"] = bases[0]
    if datasets:
        meta["datasets"] = datasets
    first_tag = outputs[0]["rows"][-1]["tag"] if outputs and outputs[0]["rows"] else "TAG"
    parts = [_front(meta), f"# {repo_id.split('/')[1]}\n",
             "Checkpoints fine-tuned the MultiPL-T way, one commit per epoch, each tagged "
             "`LANG-EXPERIMENT-epochN`. Every tag holds bf16 safetensors weights, the config and "
             "the tokenizer, so the tag alone loads it:\n",
             f"\n```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
             f"model = AutoModelForCausalLM.from_pretrained(\"{repo_id}\", revision=\"{first_tag}\")\n"
             f"tokenizer = AutoTokenizer.from_pretrained(\"{repo_id}\", revision=\"{first_tag}\")\n```\n",
             "\n## Checkpoints\n\n"]
    table = [[r["tag"], r["lang"], r["epoch"], r.get("step"), _loss(r.get("eval_loss")),
              _pct(passk.get(r["tag"]))] for o in outputs for r in o["rows"]]
    parts.append(_table(CHECKPOINT_COLUMNS, table))
    if note is None:
        note = pass1_note(passk, benchmark, num_problems)
    if note:
        parts.append(f"\n{note}\n")
    if not_looked_up:
        parts.append(f"\n{not_looked_up_note(list(not_looked_up), [row[0] for row in table])}\n")
    parts.append("\n## Recipe\n")
    from multiplt.hub.results import public_places

    for o in outputs:
        config = o["config"]
        # a base model, dataset or recipe file at a place of the deployment (a local path, a
        # storage URI) is shown by its public name NAME~HASH, as `publish results` names places
        shown = {**config, "dataset": _dataset(config)}
        used = [[k, public_places(shown[k])] for k in RECIPE_KEYS if shown.get(k) not in (None, "")]
        if not used:  # an output without a run config: no settings to show
            continue
        parts.append(f"\n{config.get('lang', '?')} / {config.get('experiment', '?')}:\n\n"
                     + _table(["setting", "value"], used))
    return "".join(parts)


def latest(rows: list[dict]) -> dict:
    """The latest recorded of rows (by `created_at`; `run_id` orders rows recorded at once)."""
    return max(rows, key=lambda r: (r.get("created_at") or "", r.get("run_id") or ""))


def _sort_key(key: tuple) -> tuple:
    return tuple((v is None, 0 if v is None else v) for v in key)  # None last, 0 is not None


def results_summary(table_rows: list[dict]) -> list[dict]:
    """The pass@1 rows of the card: per benchmark, model, revision, language, epoch and
    temperature the latest recorded row at k=1. Runs on different benchmarks (the full one, a
    `--limit`/`--problems` part of it, another source) or at different temperatures are
    different measurements, so each gets its own line; several runs on one of these keys (e.g.
    the same run at another n) give the latest recorded one."""
    groups: dict[tuple, list[dict]] = {}
    for row in table_rows:
        if row.get("k") == 1:
            key = (benchmark_name(row), row["model"], row.get("revision") or "", row["lang"],
                   row.get("epoch"), row.get("temperature"))
            groups.setdefault(key, []).append(row)
    return [latest(groups[key]) for key in sorted(groups, key=_sort_key)]


def results_card(repo_id: str, table_rows: list[dict], columns: list[str], license: str,
                 hub: dict | None = None) -> str:
    """`table_rows`: the rows as published (results.public_rows). `hub` {(model, revision):
    "REPO@TAG"} keyed as those rows name them: the checkpoints published to the Hub, named in a
    column of the pass@1 table (no column when none is)."""
    meta = {"license": license, "pretty_name": repo_id.split("/")[1], "tags": ["code", "multipl-t",
                                                                             "leaderboard"],
            "configs": [{"config_name": "default",
                         "data_files": [{"split": "train", "path": "data/results-*.parquet"}]}]}
    lines = results_summary(table_rows)
    named = [(hub or {}).get((r["model"], r.get("revision"))) for r in lines]
    header = ["benchmark", "problems", "model", "revision", "language", "epoch", "temperature", "pass@1"]
    summary = [[benchmark_name(r), r.get("num_problems"), r["model"], r.get("revision") or "",
                r["lang"], r.get("epoch"), r.get("temperature"), _pct(r["estimate"])]
               + ([name] if any(named) else []) for r, name in zip(lines, named)]
    header += ["on the Hub"] if any(named) else []
    return "".join([
        _front(meta), f"# {repo_id.split('/')[1]}\n",
        "The MultiPL-T Platform's results store: one row per scored run and k (pass@k of a model "
        "or checkpoint on a MultiPL-E-style benchmark). A checkpoint published to the Hub is named "
        "by its repo (`model`) and tag (`revision`); another local model or tokenizer is named "
        "`NAME~HASH` (its folder's name and a hash of where it is kept: `~` marks it as no Hub "
        "id), a local benchmark by its file name.\n\n",
        f"{len(table_rows)} rows; columns: {', '.join(f'`{c}`' for c in columns)}.\n",
        "\n## pass@1\n\n",
        "One line per benchmark, model, revision, language, epoch and temperature. The benchmark "
        "is named as in every language (the `benchmark` column holds each language's file): a "
        "partial benchmark (`--limit`, `--problems`) or another source (named by its file name: two "
        "sources of one file name share it) is a benchmark of its own, and "
        "pass@1 at different temperatures are different measurements. Where several runs share a "
        "line (e.g. the same run at another n), it shows the latest recorded one (`created_at`).\n\n",
        _table(header, summary),
        "\n## Load it\n\n",
        f"```python\nfrom datasets import load_dataset\n\nresults = load_dataset(\"{repo_id}\", "
        f"split=\"train\")\n```\n"])
