"""vLLM's offline engine, when `vllm` is installed (it is not a dependency of this package)."""

from __future__ import annotations

from typing import Iterator

from multiplt.errors import MultipltError
from multiplt.generation.base import Backend, Description, Request, Sampling
from multiplt.generation.hf_backend import TokenizerDescription, encode_prompt, fit_prompt, special_ids
from multiplt.generation.seeds import sample_seed
from multiplt.generation.stops import cut_at_stop

MAX_MODEL_LEN = 2048  # every model's context here (MultiPL-T's prompt limit)


class VLLMBackend(Backend):
    name = "vllm"

    def __init__(self, model: str, revision: str | None = None, tokenizer: str | None = None,
                 chunk: int = 2048, tokenizer_revision: str | None = None):
        try:
            import vllm
        except ImportError:
            raise MultipltError("the vllm backend needs the `vllm` package, which is not installed "
                                "(pip install vllm on a GPU worker, or use --backend transformers)") from None
        from multiplt.generation.model_source import resolve_model
        from multiplt.models.tokenizer import tokenizer_errors

        self.model_ref = resolve_model(model, revision)
        self.tokenizer_ref = (resolve_model(tokenizer, tokenizer_revision, what="tokenizer")
                              if tokenizer else self.model_ref)
        self._vllm = vllm
        with tokenizer_errors(self.tokenizer_ref.path, ref=tokenizer or model):  # vLLM loads it
            self.llm = vllm.LLM(model=self.model_ref.path, tokenizer=self.tokenizer_ref.path,
                                dtype="bfloat16", max_model_len=MAX_MODEL_LEN)
        self.max_model_len = MAX_MODEL_LEN
        self.chunk = chunk
        self._cut: set[str] = set()  # problems whose prompt was cut to fit (warned once each)
        # A completion ends at its first special token, as on MultiPL-E's HF path (StarCoder2's
        # `A<file_sep>B` gives A): vLLM stops a sequence at any of `stop_token_ids` and leaves a
        # special one out of the text. By default it would only hide special tokens and go on
        # (it stops at the model's EOS itself). The prompt is vLLM's to tokenize: with the
        # tokenizer's default special tokens (BOS).
        self.tokenizer = self.llm.get_tokenizer()
        self.special_ids = special_ids(self.tokenizer)

    @classmethod
    def from_options(cls, model=None, revision=None, tokenizer=None, tokenizer_revision=None, **_):
        if not model:
            raise MultipltError("--model is required for the vllm backend")
        return cls(model, revision, tokenizer, tokenizer_revision=tokenizer_revision)

    def describe(self) -> Description:
        return TokenizerDescription.of(self.model_ref, self.tokenizer_ref)

    def _prompt(self, problem: str, text: str, max_new: int):
        """(what vLLM is given, its max_tokens). A prompt (stripped, as MultiPL-E does) that
        leaves room for `max_new` tokens goes as text, which vLLM tokenizes itself. Any other
        would fail the whole batch in vLLM (a prompt plus max_tokens past max_model_len): as the
        transformers backend does, it is tokenized here (hf_backend.encode_prompt), cut from the
        left when it fills the context (hf_backend.fit_prompt: its BOS and end stay, room for
        `max_new` tokens, at most half the context; logged) and given the tokens that fit, and
        goes to vLLM as token ids."""
        text = text.strip()
        if len(self.tokenizer(text)["input_ids"]) + max_new <= self.max_model_len:
            return text, max_new
        ids, head = encode_prompt(self.tokenizer, text, self.tokenizer.eos_token_id)
        ids = fit_prompt(problem, ids, max_new, self.max_model_len, head, self._cut)
        return {"prompt_token_ids": ids}, min(max_new, self.max_model_len - len(ids))

    def generate(self, requests: list[Request], sampling: Sampling) -> Iterator[list[tuple[Request, str]]]:
        prompts = {}
        for r in requests:  # a problem's samples share its prompt
            if r.problem not in prompts:
                prompts[r.problem] = self._prompt(r.problem, r.prompt, sampling.max_new_tokens)
        for start in range(0, len(requests), self.chunk):
            batch = requests[start: start + self.chunk]
            params = [self._vllm.SamplingParams(
                temperature=sampling.temperature, top_p=sampling.top_p,
                max_tokens=prompts[r.problem][1], stop=list(sampling.stop),
                stop_token_ids=list(self.special_ids),
                seed=sample_seed(sampling.seed, r.problem, r.index)) for r in batch]
            outs = self.llm.generate([prompts[r.problem][0] for r in batch], params)
            yield [(r, cut_at_stop(o.outputs[0].text, sampling.stop)) for r, o in zip(batch, outs)]
