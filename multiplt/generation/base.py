"""The one interface every generation backend implements, and the backend registry."""

from __future__ import annotations

import abc
import dataclasses
from typing import Iterator

from multiplt.errors import MultipltError

BACKENDS = ("transformers", "openai", "vllm", "replay")


@dataclasses.dataclass(frozen=True)
class Sampling:
    """How to sample; part of a completion folder's identity (a rerun must not change it)."""

    temperature: float = 0.2
    top_p: float = 0.95
    max_new_tokens: int = 512
    stop: tuple[str, ...] = ()
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class Request:
    """Sample number `index` of benchmark problem `problem`, whose prompt is `prompt`."""

    problem: str
    prompt: str
    index: int


class Backend(abc.ABC):
    """Turns requests into completions (text after the prompt, cut before the earliest stop
    string). `generate` yields groups of finished completions so the caller can save them as
    they come; requests may finish in any order."""

    name: str = ""

    def describe(self) -> dict:
        """What identifies the model for the run record: model, revision, resolved_commit, tokenizer."""
        return {}

    @abc.abstractmethod
    def generate(self, requests: list[Request], sampling: Sampling) -> Iterator[list[tuple[Request, str]]]:
        ...

    def close(self) -> None:
        pass


def make_backend(name: str, **options) -> Backend:
    """The backend called `name`, built from the options the CLI collected (unused ones ignored)."""
    if name == "transformers":
        from multiplt.generation.hf_backend import TransformersBackend as cls
    elif name == "openai":
        from multiplt.generation.openai_backend import OpenAIBackend as cls
    elif name == "vllm":
        from multiplt.generation.vllm_backend import VLLMBackend as cls
    elif name == "replay":
        from multiplt.generation.replay import ReplayBackend as cls
    else:
        raise MultipltError(f"unknown generation backend {name!r} (choose from {', '.join(BACKENDS)})")
    return cls.from_options(**options)
