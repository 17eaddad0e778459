"""The fine-tuning configuration: one typed dataclass, filled from (in order) its defaults, a YAML
recipe in `multiplt/recipes/`, and command-line overrides. The resolved result is written beside
the training output and inside every checkpoint, so each checkpoint says exactly how it was made.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
import re
import typing

from multiplt.errors import MultipltError, type_word

RECIPES_DIR = pathlib.Path(__file__).resolve().parent.parent / "recipes"
EXPERIMENT_RE = re.compile(r"[a-z0-9_]+")  # fullmatch: `$` would let a trailing newline through
#: what an experiment label may be (train, generate, results record): so that the tag
#: `<lang>-<experiment>-epochN` of its checkpoints parses
EXPERIMENT_RULE = "an experiment label is one or more of a-z, 0-9 and _ (as `train --experiment`)"


def check_experiment(label: str, what: str = "--experiment") -> None:
    """MultipltError naming `what` unless `label` is an experiment label (EXPERIMENT_RULE)."""
    if not EXPERIMENT_RE.fullmatch(label):
        raise MultipltError(f"{what} {label!r}: {EXPERIMENT_RULE}")
PRECISIONS = ("auto", "bf16-master", "bf16-mixed", "bf16", "fp32")
DISTRIBUTED = ("ddp", "fsdp")
# The attention kernels transformers' from_pretrained takes (a test checks them against its own
# list), so a typo fails before the data is packed, not when the model loads. Each model supports
# a subset (GPTBigCode: no flex_attention) and the flash ones need their package installed: those
# still fail when the model loads.
ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2", "flash_attention_3", "flex_attention")
#: the published MultiPL-T dataset on the Hub and its splits: these five, whatever languages the
#: registry holds (a language added to multiplt/languages/ has no split there; it is trained on a
#: dataset of its own, e.g. its `multiplt translate` output). The pipelines read them too.
PUBLISHED_DATASET = "nuprl/MultiPL-T"
PUBLISHED_SPLITS = ("julia", "lua", "ocaml", "r", "racket")


@dataclasses.dataclass(frozen=True)
class Sources:
    """Where `resolve` took each value from, so that an error names it where it was written: a
    value the recipe set (and no flag overrode) as the recipe's key, in a message led by
    `recipe WHERE: `; any other value (a flag's, or a built-in default that a flag would
    override) as its flag. `Sources()`: every value named as its flag."""

    recipe: str = ""  # the recipe's path or URI, as its own errors name it
    recipe_keys: frozenset = frozenset()  # the fields whose values came from the recipe

    def name(self, field: str) -> str:
        """`lang` for a recipe's value, `--lang` for any other."""
        return field if field in self.recipe_keys else "--" + field.replace("_", "-")

    def lead(self, *fields: str) -> str:
        """`recipe WHERE: ` when any of `fields` came from the recipe, else ""."""
        return f"recipe {self.recipe}: " if self.recipe_keys.intersection(fields) else ""


@dataclasses.dataclass
class TrainConfig:
    # --- what to train on, from what, and where the checkpoints go (usually from the CLI) ---
    dataset: str = ""  # storage URI (parquet/JSONL file or folder) or a Hub dataset name
    # Hub revision (branch, tag or commit) of a Hub dataset ("" = its default branch); the commit
    # it is at is resolved when the run starts and recorded (dataset_commit)
    dataset_revision: str = ""
    split: str = ""  # "" = the language's published split name (languages.get(lang).split)
    text_column: str = "content"
    base: str = ""  # Hub name, local folder or storage URI of the base model
    # Hub revision of the base ("" = default branch), or a tag of a training output; a Hub base is
    # resolved to the commit that revision is at when the run starts (recorded as base_commit)
    base_revision: str = ""
    tokenizer: str = ""  # "" = the base model's tokenizer
    lang: str = ""
    experiment: str = ""  # goes into tags LANG-EXPERIMENT-epochN, so [a-z0-9_]+
    out: str = ""  # storage URI of the training output (manifest.jsonl, checkpoints/, state/)
    recipe: str = ""  # name of the YAML recipe these values came from
    # --- the recipe: the paper's hyperparameters (StarCoderBase-1B defaults) ---
    seq_len: int = 2048  # packed sequence length
    batch_size: int = 8  # effective (global) sequences per optimizer step
    # sequences per device per forward pass; 0 = chosen from the GPU memory (multiplt/training/speed.py;
    # 1 on CPUs). Only the speed changes: the optimizer step still sees batch_size sequences.
    micro_batch_size: int = 0
    epochs: int = 7
    lr: float = 3e-5
    lr_scheduler: str = "cosine"  # cosine | linear | constant, all after linear warmup
    warmup_steps: int = 100
    weight_decay: float = 0.001  # not applied to biases and LayerNorm weights
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    max_grad_norm: float = 1.0
    eval_fraction: float = 0.01  # documents held out for eval loss; 0 turns eval off
    seed: int = 42
    # --- how to run it ---
    # auto = bf16-master on one GPU with bf16, bf16-mixed on several (DDP, FSDP), fp32 on CPUs.
    # bf16-master: bf16 weights and activations (residual stream too), fp32 master weights and
    # AdamW moments in the optimizer (multiplt/training/master.py; one process only).
    # bf16-mixed: bf16 autocast over fp32 weights (LayerNorm and residual stream fp32).
    precision: str = "auto"
    attn_implementation: str = "sdpa"
    gradient_checkpointing: bool = False
    distributed: str = "ddp"  # ddp | fsdp (FSDP shards params/grads/optimizer for big models)
    # torch.compile the model (its blocks, or multiplt's forward's blocks); unset (null) = on with
    # one GPU or DDP, off on CPUs and under FSDP.
    compile: typing.Optional[bool] = None
    # multiplt's own GPTBigCode training forward (same math and state dict as transformers', no
    # host sync, LM head fused with the loss; multiplt/training/gptbigcode.py) where it applies:
    # GPTBigCode models without FSDP or gradient checkpointing. false = transformers' forward.
    fast_forward: bool = True
    log_every: int = 10  # optimizer steps between log lines (the progress bar updates every step)

    def validate(self, require: bool = True, sources: Sources = Sources()) -> None:
        """Refuse bad values; `require=False` (for --print-config) lets the fields the command
        line usually gives (dataset, base, lang, experiment, out) be unset. `sources`: where the
        values came from (see `Sources`), for the messages."""
        for name in ("dataset", "base", "lang", "experiment", "out"):
            if require and not getattr(self, name):
                raise MultipltError(f"train: --{name.replace('_', '-')} is required")
        if (require or self.experiment) and not EXPERIMENT_RE.fullmatch(self.experiment):
            raise MultipltError(
                f"{sources.lead('experiment')}bad {sources.name('experiment')} {self.experiment!r}: "
                f"use only a-z, 0-9 and _ so the tag {self.lang}-{self.experiment}-epochN parses")
        positive = ("seq_len", "batch_size", "epochs", "log_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise MultipltError(f"bad {name}={getattr(self, name)}: must be at least 1")
        if not -2 ** 63 <= self.seed < 2 ** 64:  # what torch.manual_seed takes
            raise MultipltError(f"bad seed={self.seed}: must be in [-2**63, 2**64)")
        if self.micro_batch_size < 0:
            raise MultipltError(f"bad micro_batch_size={self.micro_batch_size}: must be >= 1, or 0 "
                                "to choose it from the GPU memory")
        # each value may come from the recipe or its command-line flag: the message names the
        # setting and the value it got (NaN fails every comparison below)
        for name in ("lr", "max_grad_norm", "adam_eps"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise MultipltError(f"bad {name}={value}: must be finite and > 0")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise MultipltError(f"bad weight_decay={self.weight_decay}: must be finite and >= 0")
        if self.warmup_steps < 0:
            raise MultipltError(f"bad warmup_steps={self.warmup_steps}: must be >= 0")
        for name in ("adam_beta1", "adam_beta2"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise MultipltError(f"bad {name}={value}: must be in [0, 1)")
        if not 0 <= self.eval_fraction < 0.5:
            raise MultipltError(f"bad eval_fraction={self.eval_fraction}: must be in [0, 0.5)")
        if self.micro_batch_size and self.batch_size % self.micro_batch_size:
            raise MultipltError(f"batch_size {self.batch_size} is not a multiple of "
                                f"micro_batch_size {self.micro_batch_size}")
        if self.precision not in PRECISIONS:
            raise MultipltError(f"bad precision {self.precision!r}; choose from {', '.join(PRECISIONS)}")
        if self.distributed not in DISTRIBUTED:
            raise MultipltError(f"bad distributed {self.distributed!r}; choose from {', '.join(DISTRIBUTED)}")
        if self.attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise MultipltError(f"bad attn_implementation {self.attn_implementation!r}; choose from "
                                f"{', '.join(ATTN_IMPLEMENTATIONS)}")
        if self.lr_scheduler not in ("cosine", "linear", "constant"):
            raise MultipltError(f"bad lr_scheduler {self.lr_scheduler!r}; choose cosine, linear or constant")
        if self.dataset and self.split:
            check_published_split(self.dataset, self.split, self.lang, sources)
        if self.dataset_revision:
            check_dataset_revision(self.dataset, self.dataset_revision, sources)

    def tag(self, epoch: int) -> str:
        return f"{self.lang}-{self.experiment}-epoch{epoch}"

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# Fields that may change between a run and its resumption without changing what it computes.
RESUME_FREE_FIELDS = {"log_every", "recipe", "compile", "fast_forward"}
# Fields added after run configs were first written, with the value a run config that lacks one
# ran with (a run written before dataset_revision existed loaded a Hub dataset's default branch).
ADDED_FIELDS = {"dataset_revision": ""}


def check_dataset_revision(dataset: str, revision: str, sources: Sources = Sources()) -> None:
    """MultipltError unless `revision` (--dataset-revision) can apply to `dataset`: a blank one,
    or one given with a dataset in storage (a local path or storage URI, which has no Hub
    revisions), is refused before anything is read."""
    from multiplt.training.data import is_hub_dataset

    named = f"{sources.lead('dataset_revision', 'dataset')}{sources.name('dataset_revision')} {revision!r}"
    if not revision.strip():
        raise MultipltError(f"{named} is blank: give a Hub branch, tag or commit, or leave it out")
    if dataset and not is_hub_dataset(dataset):
        raise MultipltError(f"{named} is for a Hub dataset; {sources.name('dataset')} {dataset} is a "
                            f"local path or storage URI, which has no revisions")


def check_published_split(dataset: str, split: str, lang: str = "", sources: Sources = Sources()) -> None:
    """MultipltError when `dataset` is the published MultiPL-T dataset (PUBLISHED_DATASET; the
    Hub's names ignore case) and `split` is none of its splits: said before the output is locked
    or the base model downloaded, where the Hub loader would fail only once those are done.
    `sources`: where the values came from (see `Sources`), for the message."""
    if dataset.casefold() != PUBLISHED_DATASET.casefold() or split in PUBLISHED_SPLITS:
        return
    which = f" for {sources.name('lang')} {lang}" if lang else ""
    raise MultipltError(
        f"{sources.lead('dataset', 'split', 'lang')}{sources.name('dataset')} {dataset} has no "
        f"split {split!r}{which} (its splits: "
        f"{', '.join(PUBLISHED_SPLITS)}): give --dataset data of your own with that split (e.g. "
        f"the output of `multiplt translate`), or --split one of those")


def field_types() -> dict[str, type]:
    hints = typing.get_type_hints(TrainConfig)
    out = {}
    for f in dataclasses.fields(TrainConfig):
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        out[f.name] = args[0] if typing.get_origin(hint) is typing.Union and len(args) == 1 else hint
    return out


def nullable_fields() -> set[str]:
    """Fields whose null value means "chosen at run time" (typed Optional in TrainConfig)."""
    hints = typing.get_type_hints(TrainConfig)
    return {name for name, hint in hints.items() if type(None) in typing.get_args(hint)}


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def load_recipe(name_or_path: str) -> dict:
    """The recipe's values as a dict (YAML mapping of TrainConfig field names). `name_or_path`:
    a built-in recipe name, a local .yaml/.yml path, or a storage URI (file://, s3://)."""
    where = recipe_location(name_or_path)
    from multiplt.training import recipe_yaml

    values = recipe_yaml.parse(_read_recipe(where), f"recipe {where}")
    if values is None:  # an empty file: the defaults
        return {}
    if not isinstance(values, dict):
        raise MultipltError(f"recipe {where} must be a mapping of field: value")
    return _coerce(values, f"recipe {where}")


def recipe_location(name_or_path: str) -> str:
    """The path or storage URI that `--recipe` names: a URI, or what reads as a mistyped one
    (storage.parse says which), and a .yaml/.yml name are read as written; any other value is
    the name of a built-in recipe."""
    from multiplt.storage import uri as uris

    if (uris._SCHEME.match(name_or_path) or uris.mistyped(name_or_path)
            or name_or_path.endswith((".yaml", ".yml"))):
        return name_or_path
    builtin = RECIPES_DIR / f"{name_or_path}.yaml"
    if not builtin.is_file():
        raise MultipltError(f"unknown recipe {name_or_path!r}; known: {', '.join(recipe_names())} "
                            f"(or a .yaml path or a file:// or s3:// URI)")
    return str(builtin)


def _read_recipe(where: str) -> str:
    from multiplt import storage

    try:
        data = storage.read_bytes(where)
    except storage.NotFound:
        raise MultipltError(f"recipe file {where} does not exist") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MultipltError(f"recipe {where} is not UTF-8 text: byte 0x{data[exc.start]:02x} at "
                            f"offset {exc.start}") from None


def _given(value) -> str:
    """A value as an error message shows what was given: `got 5 (an integer)`, `got null`."""
    if value is None:
        return "null"
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)
    shown = repr(value)
    return f"{shown if len(shown) <= 60 else shown[:57] + '...'} ({kind})"


def _typed(key: str, want: type, value, source: str):
    """`value` as field `key` (of type `want`) takes it, or an error naming the key, the type and
    what was given. Nothing is converted but an integer to a float: no rounding of 64.9, no
    true as 1, no "None" from null nor "['a', 'b']" from a list."""
    if want is float and type(value) is int:
        try:
            return float(value)
        except OverflowError:
            raise MultipltError(f"{source}: {key}={value} is too large for a number") from None
    if type(value) is want:
        return value
    expected = "true or false" if want is bool else type_word(want)
    hint = ""
    if want is str and (isinstance(value, (int, float)) or type(value).__name__ in ("date", "datetime")):
        hint = "; quote it to give it as text"  # `split: 2024`, `base_revision: 2024-01-01`
    raise MultipltError(f"{source}: {key} must be {expected}, got {_given(value)}{hint}")


def _coerce(values: dict, source: str) -> dict:
    types = field_types()
    nullable = nullable_fields()
    out = {}
    for key, value in values.items():
        if key not in types:
            raise MultipltError(f"{source}: unknown field {key!r}; known: {', '.join(types)}")
        if value is None and key in nullable:
            out[key] = None
        else:
            out[key] = _typed(key, types[key], value, source)
    return out


def resolve(recipe: str | None, overrides: dict, require: bool = True) -> TrainConfig:
    """Defaults <- recipe <- overrides (None values in overrides mean 'not given'), the language
    code normalised, local paths made absolute (see `absolute_refs`) and everything validated;
    `require=False` (--print-config) lets the command-line fields be unset."""
    values = load_recipe(recipe) if recipe else {}
    given = _coerce({k: v for k, v in overrides.items() if v is not None}, "command line")
    sources = Sources(recipe_location(recipe) if recipe else "", frozenset(values) - frozenset(given))
    values.update(given)
    if recipe:
        values["recipe"] = recipe
    config = TrainConfig(**values)
    if config.lang:
        from multiplt import languages

        try:
            language = languages.get(config.lang)
        except MultipltError as exc:  # named where it came from: the flag, or the recipe's key
            named = (f"{sources.lead('lang')}lang" if "lang" in sources.recipe_keys
                     else f"--lang {config.lang}")
            raise MultipltError(f"{named}: {exc}") from None
        config.lang = language.code
        config.split = config.split or language.split
    absolute_refs(config, sources)
    config.validate(require, sources)
    return config


# Fields naming a place: the output (always a storage URI) and the inputs (a storage URI, a
# local path, or a Hub name).
OUTPUT_FIELD = "out"
INPUT_FIELDS = ("dataset", "base", "tokenizer")


def absolute_refs(config: TrainConfig, sources: Sources = Sources()) -> None:
    """Make the local paths in `config` absolute, so the run config and the manifest rows name
    places that hold from any folder: `out` whenever it is a bare path; `dataset`, `base` and
    `tokenizer` when they name an existing local file or folder (else they are Hub names, or a
    missing path that fails later with its own error; a dataset file name like `x.jsonl` counts as
    a path). Storage URIs (`file://`, `s3://`) are kept as written; a mistyped one (`s3:/b/x`,
    `s3//b/x`) is an error here, before anything is read or written, naming the flag or the
    recipe's key that gave it (`sources`)."""
    from multiplt.storage import uri as uris
    from multiplt.training.data import DATA_SUFFIXES

    for name in (OUTPUT_FIELD, *INPUT_FIELDS):
        value = getattr(config, name)
        if not value or uris._SCHEME.match(value):
            continue
        meant = uris.mistyped(value)
        if meant is not None:
            raise MultipltError(f"{sources.lead(name)}{sources.name(name)} {value!r} reads as a mistyped "
                                f"URI (did you mean {meant!r}?); {uris.local_name_hint(value)}")
        path = os.path.expanduser(value)
        if (name == OUTPUT_FIELD or os.path.exists(path)
                or (name == "dataset" and value.endswith(DATA_SUFFIXES))):
            setattr(config, name, os.path.abspath(path))


def _same_place(value):
    """A field value in a form where two spellings of one place compare equal: local paths and
    file:// URIs as absolute paths without a trailing slash, storage URIs without one. A value
    that is no storage URI (a Hub name) compares as written."""
    if not isinstance(value, str) or not value:
        return value
    from multiplt.storage import uri as uris

    try:
        loc = uris.parse(value)
    except MultipltError:
        return value
    if loc.is_local:
        return loc.path.rstrip("/") or "/"
    return value.rstrip("/")


def resume_differences(saved: dict, config: TrainConfig) -> list[str]:
    """Fields whose values differ between a saved run config and this one (ignoring free ones).
    `out` is where the saved config was read, so it is never a difference; dataset, base and
    tokenizer compare as places (`/x/d.jsonl`, `file:///x/d.jsonl` and a relative `d.jsonl` read
    from /x are one; see `_same_place`)."""
    now = config.as_dict()
    differ = []
    for k in now:
        if k in RESUME_FREE_FIELDS or k == OUTPUT_FIELD:
            continue
        old, new = saved.get(k, ADDED_FIELDS.get(k)), now[k]
        if k in INPUT_FIELDS:
            old, new = _same_place(old), _same_place(new)
        if old != new:
            differ.append(k)
    return sorted(differ)
