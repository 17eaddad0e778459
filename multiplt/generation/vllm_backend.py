"""vLLM's offline engine, when `vllm` is installed (it is not a dependency of this package)."""

from __future__ import annotations

from typing import Iterator

from multiplt.errors import MultipltError
from multiplt.generation.base import Backend, Description, Request, Sampling
from multiplt.generation.seeds import sample_seed
from multiplt.generation.stops import cut_at_stop


class VLLMBackend(Backend):
    name = "vllm"

    def __init__(self, model: str, revision: str | None = None, tokenizer: str | None = None,
                 chunk: int = 2048):
        try:
            import vllm
        except ImportError:
            raise MultipltError("the vllm backend needs the `vllm` package, which is not installed "
                                "(pip install vllm on a GPU worker, or use --backend transformers)") from None
        from multiplt.generation.model_source import resolve_model
        from multiplt.models.tokenizer import tokenizer_errors

        self.model_ref = resolve_model(model, revision)
        self.tokenizer_ref = resolve_model(tokenizer, what="tokenizer") if tokenizer else self.model_ref
        self._vllm = vllm
        with tokenizer_errors(self.tokenizer_ref.path, ref=tokenizer or model):  # vLLM loads it
            self.llm = vllm.LLM(model=self.model_ref.path, tokenizer=self.tokenizer_ref.path,
                                dtype="bfloat16", max_model_len=2048)
        self.chunk = chunk
        # A completion ends at its first special token, as on MultiPL-E's HF path (StarCoder2's
        # `A<file_sep>B` gives A): vLLM stops a sequence at any of `stop_token_ids` and leaves a
        # special one out of the text. By default it would only hide special tokens and go on.
        # The prompt is vLLM's to tokenize: with the tokenizer's default special tokens (BOS).
        tokenizer = self.llm.get_tokenizer()
        self.special_ids = sorted(set(getattr(tokenizer, "all_special_ids", None) or ()))

    @classmethod
    def from_options(cls, model=None, revision=None, tokenizer=None, **_):
        if not model:
            raise MultipltError("--model is required for the vllm backend")
        return cls(model, revision, tokenizer)

    def describe(self) -> Description:
        return Description(model=self.model_ref.requested, revision=self.model_ref.revision,
                           resolved_commit=self.model_ref.resolved_commit,
                           checkpoint_uri=self.model_ref.checkpoint_uri,
                           tokenizer=self.tokenizer_ref.requested)

    def generate(self, requests: list[Request], sampling: Sampling) -> Iterator[list[tuple[Request, str]]]:
        for start in range(0, len(requests), self.chunk):
            batch = requests[start: start + self.chunk]
            params = [self._vllm.SamplingParams(
                temperature=sampling.temperature, top_p=sampling.top_p,
                max_tokens=sampling.max_new_tokens, stop=list(sampling.stop),
                stop_token_ids=list(self.special_ids),
                seed=sample_seed(sampling.seed, r.problem, r.index)) for r in batch]
            outs = self.llm.generate([r.prompt.strip() for r in batch], params)
            yield [(r, cut_at_stop(o.outputs[0].text, sampling.stop)) for r, o in zip(batch, outs)]
