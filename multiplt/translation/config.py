"""The resolved settings of `multiplt translate` (written beside each shard's output)."""

from __future__ import annotations

import dataclasses

from multiplt.errors import MultipltError

STAGES = ("all", "sample", "collect", "summary")


@dataclasses.dataclass
class TranslateConfig:
    tests: str | None  # not read by --stage summary, which may go without it
    out: str
    langs: tuple[str, ...]
    backend: str = "transformers"
    model: str | None = None
    revision: str | None = None
    tokenizer: str | None = None
    n: int = 50
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 512
    batch_size: int | None = None  # optional cap on sequences in flight (continuous batching)
    seed: int = 0
    rouge_threshold: float = 0.6
    shard: tuple[int, int] = (0, 1)
    limit: int | None = None
    workers: int | None = None
    timeout: float | None = None
    unsafe_no_sandbox: bool = False
    replay_source: str | None = None
    api_base: str | None = None
    concurrency: int | None = None
    stage: str = "all"

    def check(self) -> None:
        from multiplt import languages
        from multiplt.execution.executor import check_options
        from multiplt.generation.driver import check_replay_source, check_sampling

        if not self.langs:
            raise MultipltError("--lang names no language")
        # a name (`racket`) is its code (`rkt`) everywhere after this: folders, funnels, output;
        # an unknown one is named with the flag, as every command's --lang does
        codes = languages.codes(",".join(self.langs), "--lang")
        for name in self.langs:
            if not languages.get(name).target:  # Python, the source language
                raise MultipltError(f"--lang {name}: translation targets another language than Python")
        self.langs = tuple(codes)
        if not 0 < self.rouge_threshold <= 1:
            raise MultipltError(f"--rouge-threshold must be in (0, 1], got {self.rouge_threshold}")
        check_sampling(n=self.n, temperature=self.temperature, top_p=self.top_p,
                       max_new_tokens=self.max_new_tokens, batch_size=self.batch_size,
                       concurrency=self.concurrency)
        check_options(self.workers, self.timeout)
        if self.limit is not None and self.limit < 1:
            raise MultipltError(f"--limit must be at least 1, got {self.limit}")
        if self.stage not in STAGES:
            raise MultipltError(f"--stage must be one of {', '.join(STAGES)}, got {self.stage!r}")
        if self.stage == "summary":  # adds up the shards' funnels: reads no input, no model
            return
        if not self.tests:
            raise MultipltError("--tests is required (except with --stage summary)")
        if self.backend == "replay" and not self.replay_source:
            raise MultipltError("the replay backend needs --replay-source")
        if self.backend != "replay" and not self.model:
            raise MultipltError("--model is required (except with --backend replay)")
        check_replay_source(self.backend, self.replay_source)

    @property
    def model_label(self) -> str:
        """The model the samples are recorded under: --model, or for the replay backend without
        one the replay source's file or folder name; a per-language source's name is cut at its
        `{lang}`, without the separator before it (`replay-{lang}.jsonl`: `replay`)."""
        from multiplt.generation.replay import replay_name

        return self.model or replay_name(self.replay_source or "replay")
