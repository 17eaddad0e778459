"""The one interface every generation backend implements (the registry is backends.py)."""

from __future__ import annotations

import abc
import dataclasses
from typing import Iterator


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


@dataclasses.dataclass(frozen=True)
class Description:
    """Where a backend's completions come from, for the run record. Every backend fills the
    same fields; one that does not apply to it stays None (and is left out of the record)."""

    model: str | None = None  # what was asked for: Hub name, folder, URI, served model name
    revision: str | None = None  # as asked for (Hub revision or checkpoint tag)
    resolved_commit: str | None = None  # Hub commit, or the ETag digest of a storage folder
    checkpoint_uri: str | None = None  # set when `revision` was a checkpoint tag
    tokenizer: str | None = None
    api_base: str | None = None  # a completions server
    replay_source: str | None = None  # a folder or JSONL of existing completions

    def as_record(self) -> dict:
        """The fields that apply, as a dict for the run record."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


class Backend(abc.ABC):
    """Turns requests into completions (text after the prompt, cut before the earliest stop
    string). `generate` yields groups of finished completions so the caller can save them as
    they come; requests may finish in any order.

    A backend is built by `from_options` from the options the CLI collected (model, revision,
    tokenizer, batch_size, api_base, concurrency, replay_source); it ignores those it does not
    use and raises MultipltError naming a missing one it needs."""

    name: str = ""

    @classmethod
    @abc.abstractmethod
    def from_options(cls, **options) -> "Backend":
        ...

    @abc.abstractmethod
    def describe(self) -> Description:
        ...

    @abc.abstractmethod
    def generate(self, requests: list[Request], sampling: Sampling) -> Iterator[list[tuple[Request, str]]]:
        ...

    def close(self) -> None:
        pass
