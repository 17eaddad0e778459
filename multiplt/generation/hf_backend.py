"""Hugging Face transformers backend: loads a model (model_source.py) and samples with our
sampler under continuous batching (continuous.py): as many sequences in flight as memory allows
(`batch_size` caps it), shortest prompts first, bf16 on GPU; multi-query GPTBigCode models on the
slot engine (slot_batching.py: right-padded prefill into KV-cache slots), others with left
padding."""

from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Iterator

from multiplt.errors import MultipltError
from multiplt.generation.base import Backend, Description, Request, Sampling
from multiplt.generation.seeds import sample_seed
from multiplt.generation.stops import cut_at_stop

LOG = logging.getLogger("multiplt.generation")
SMALL_MODEL = 20_000_000  # parameters: below this, CPU generation runs on one thread


@dataclasses.dataclass(frozen=True)
class TokenizerDescription(Description):
    """The run record's fields of a backend that loads a tokenizer (transformers, vllm; openai
    with --tokenizer): also `tokenizer_resolved_commit`, what a --tokenizer was resolved to
    (model_source.resolve_model, as `resolved_commit` is the model's: a Hub tokenizer's commit,
    a storage URI's ETag digest; None for a local folder). Without --tokenizer the model's own
    tokenizer is loaded, at `resolved_commit`, and the field stays None (left out)."""

    tokenizer_resolved_commit: str | None = None

    @classmethod
    def of(cls, model_ref, tokenizer_ref) -> "TokenizerDescription":
        """The description of a backend that loaded `model_ref` and `tokenizer_ref`
        (model_source.resolve_model's; the same object when no --tokenizer was given)."""
        return cls(model=model_ref.requested, revision=model_ref.revision,
                   resolved_commit=model_ref.resolved_commit, checkpoint_uri=model_ref.checkpoint_uri,
                   tokenizer=tokenizer_ref.requested,
                   tokenizer_resolved_commit=(None if tokenizer_ref is model_ref
                                              else tokenizer_ref.resolved_commit))


def encode_prompt(tokenizer, text: str, eos_token_id: int | None) -> tuple[list[int], int]:
    """(prompt ids, how many of them the tokenizer put before the text). As MultiPL-E's HF path,
    the prompt is tokenized with the tokenizer's default special tokens: a BOS for the tokenizers
    that add one (Llama, CodeLlama, DeepSeek-Coder: add_bos_token), nothing for StarCoder's. A
    tokenizer that also appends EOS (add_eos_token) would end the prompt with it; MultiPL-E keeps
    that EOS (its decode then stops at it, giving empty completions), here it is dropped: a
    causal LM continues the prompt, and EOS would tell it the text has ended
    (models.tokenizer.split_specials, which training's documents share)."""
    from multiplt.models.tokenizer import split_specials

    ids = list(tokenizer(text)["input_ids"])
    plain = tokenizer(text, add_special_tokens=False)["input_ids"]
    head, tail, kept = split_specials(ids, plain, eos_token_id)
    return ids[:len(ids) - len(tail)] + kept, head


def special_ids(tokenizer, eos_token_id: int | None = None) -> list[int]:
    """The ids a completion ends at (it is cut before the first of them, as MultiPL-E's HF path
    cuts at its first special token: StarCoder2's `A<file_sep>B` gives A), sorted: the
    tokenizer's `all_special_ids`, its EOS (already among them for a transformers tokenizer;
    a tokenizer object without the list, a test's scripted one, has EOS only) and
    `eos_token_id` (the model's, for a tokenizer that names none). The transformers and vllm
    backends stop their rows at them, the openai backend asks the server to (stop_token_ids)."""
    ids = set(getattr(tokenizer, "all_special_ids", None) or ())
    for eos in (getattr(tokenizer, "eos_token_id", None), eos_token_id):
        if eos is not None:
            ids.add(eos)
    return sorted(ids)


def fit_prompt(problem: str, prompt: list[int], max_new: int, context: int, head: int = 0,
               warned: set[str] | None = None) -> list[int]:
    """A prompt that leaves the model no room to write (`context` tokens or more) is cut from
    the left (MultiPL-T truncates its test-generation inputs likewise): its end, where the
    completion continues, stays, and room remains for `max_new` tokens, at most half the context.
    Its first `head` ids, what the tokenizer put before the text (a BOS), stay in front. A
    shorter prompt stays whole (the caller gives it `context - len(prompt)` new tokens at most).
    The cut is logged once per problem (`warned` holds the problems already logged)."""
    if len(prompt) < context:
        return prompt
    keep = context - min(max_new, context // 2)
    head = min(head, keep)
    if warned is None or problem not in warned:
        if warned is not None:
            warned.add(problem)
        LOG.warning("prompt of %s is %d tokens, the model's context %d: its first %d tokens "
                    "are cut%s", problem, len(prompt), context, len(prompt) - keep,
                    f" (after the {head} the tokenizer puts in front, which stay)" if head else "")
    return prompt[:head] + prompt[len(prompt) - keep + head:]


class TransformersBackend(Backend):
    name = "transformers"

    def __init__(self, model: str, revision: str | None = None, tokenizer: str | None = None,
                 batch_size: int | None = None, device: str | None = None,
                 tokenizer_revision: str | None = None):
        import torch
        from transformers import AutoModelForCausalLM

        from multiplt.generation.model_source import resolve_model
        from multiplt.models.tokenizer import load_tokenizer

        if batch_size is not None and batch_size < 1:
            raise MultipltError(f"--batch-size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        self.model_ref = resolve_model(model, revision)
        self.tokenizer_ref = (resolve_model(tokenizer, tokenizer_revision, what="tokenizer")
                              if tokenizer else self.model_ref)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        # off a terminal the libraries' loading bars are off (multiplt.log): say what loads
        LOG.info("loading model %s on %s", model, self.device)
        try:
            self.tokenizer = load_tokenizer(self.tokenizer_ref.path, ref=tokenizer or model)
            self.model = AutoModelForCausalLM.from_pretrained(
                self.model_ref.path, dtype=dtype, attn_implementation="sdpa").to(self.device)
        except (OSError, ValueError) as exc:
            raise MultipltError(f"cannot load model {model!r}: {exc}") from None
        self.model.eval()
        if self.device == "cpu" and sum(p.numel() for p in self.model.parameters()) < SMALL_MODEL:
            # a small model's ops are too small to split across cores; a parallel region waits
            # for a busy core (measured on the shared 2-core VM: 24-29 s with 1 thread against
            # 108-174 s with 2 for the main job's generation; bench/results/generate_throughput.notes.md)
            torch.set_num_threads(1)
        from multiplt.generation import mqa_attention

        mqa_attention.enable(self.model)  # copy-free decode attention for multi-query models
        eos = self.tokenizer.eos_token_id
        self.eos_token_id = eos if eos is not None else self.model.config.eos_token_id
        pad = self.tokenizer.pad_token_id
        self.pad_token_id = pad if pad is not None else (self.eos_token_id or 0)
        self.max_positions = (getattr(self.model.config, "max_position_embeddings", None)
                              or getattr(self.model.config, "n_positions", None))
        self._cut: set[str] = set()  # problems whose prompt was cut to fit (warned once each)

    @classmethod
    def from_options(cls, model=None, revision=None, tokenizer=None, batch_size=None,
                     tokenizer_revision=None, **_):
        if not model:
            raise MultipltError("--model is required for the transformers backend")
        return cls(model, revision, tokenizer, batch_size, tokenizer_revision=tokenizer_revision)

    def describe(self) -> Description:
        return TokenizerDescription.of(self.model_ref, self.tokenizer_ref)

    def _decode(self, ids: list[int]) -> str:
        return self._raw_decode(ids, skip_special_tokens=False)

    def _completion(self, ids: list[int]) -> str:
        """A completion's text as MultiPL-E's HF path decodes it: its ids up to the first special
        token (any of the tokenizer's `all_special_ids`, or EOS), decoded with special tokens
        kept. StarCoder2's `A<file_sep>B`, a completion that runs on into another file, gives A.
        The sampler ends a row at such a token (SamplerOptions.stop_token_ids, at its next check,
        as at EOS) and hands back the ids before it; the cut here gives the same text either way."""
        special = self._special_ids
        for i, token in enumerate(ids):
            if token in special:
                return self._decode(ids[:i])
        return self._decode(ids)

    @functools.cached_property
    def _special_ids(self) -> frozenset[int]:
        return frozenset(special_ids(self.tokenizer, self.eos_token_id))

    def _encode(self, text: str) -> tuple[list[int], int]:
        return encode_prompt(self.tokenizer, text, self.eos_token_id)

    @property
    def _raw_decode(self):
        """The tokenizers library's decode when it gives what `tokenizer.decode` gives (a fast
        tokenizer without the clean-up of spaces): no per-call list conversion in Python."""
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None and getattr(self.tokenizer, "clean_up_tokenization_spaces", True) is False:
            return backend.decode
        return self.tokenizer.decode

    def generate(self, requests: list[Request], sampling: Sampling) -> Iterator[list[tuple[Request, str]]]:
        from multiplt.generation.continuous import Job, sample_continuous, supports
        from multiplt.generation.sampler import SamplerOptions

        # MultiPL-E strips prompts before tokenizing; the stored prompt stays verbatim.
        encoded = {}
        for r in requests:
            if r.problem not in encoded:
                encoded[r.problem] = self._encode(r.prompt.strip())
        jobs = []
        for r in sorted(requests, key=lambda r: (r.problem, r.index)):
            (prompt, head), max_new = encoded[r.problem], sampling.max_new_tokens
            if self.max_positions:
                prompt = self._fit(r.problem, prompt, max_new, head)
                max_new = min(max_new, self.max_positions - len(prompt))
            jobs.append(Job(r, prompt, sample_seed(sampling.seed, r.problem, r.index), max_new))
        # a row ends at its first special token (the completion is cut there anyway)
        opts = SamplerOptions(temperature=sampling.temperature, top_p=sampling.top_p,
                              max_new_tokens=sampling.max_new_tokens, eos_token_id=self.eos_token_id,
                              pad_token_id=self.pad_token_id, stop=tuple(sampling.stop),
                              stop_token_ids=self._special_ids)
        if supports(self.model):
            # continuous batching: as many rows in flight as memory allows (--batch-size caps it)
            groups = sample_continuous(self.model, jobs, opts, max_batch=self.batch_size,
                                       decode=self._decode)
        else:
            groups = self._fixed_batches(jobs, opts)
        for group in groups:
            yield [(r, cut_at_stop(self._completion(ids), sampling.stop)) for r, ids in group]

    def _fit(self, problem: str, prompt: list[int], max_new: int, head: int = 0) -> list[int]:
        return fit_prompt(problem, prompt, max_new, self.max_positions, head, self._cut)

    def _fixed_batches(self, jobs, opts):
        """Batches of --batch-size (default 16) jobs of similar prompt length, each sampled to
        its end (sampler.sample_batch): for models whose KV cache size is not known."""
        from dataclasses import replace

        from multiplt.generation.sampler import sample_batch

        size = self.batch_size or 16
        order = sorted(jobs, key=lambda j: len(j.prompt))
        for start in range(0, len(order), size):
            batch = order[start: start + size]
            one = replace(opts, max_new_tokens=min(j.max_new_tokens for j in batch))
            new_ids = sample_batch(self.model, [j.prompt for j in batch], [j.seed for j in batch],
                                   one, decode=self._decode)
            yield [(j.key, ids) for j, ids in zip(batch, new_ids)]
