"""The registry of generation backends: the one list of their names.

Each entry names the class by module path, so the registry (and what reads it: `multiplt
generate --backend`, the DAG Params) imports no backend module, torch or vLLM. Adding a backend
is one module with a `Backend` subclass and one line here.
"""

from __future__ import annotations

import importlib

from multiplt.errors import MultipltError

REGISTRY = {
    "transformers": "multiplt.generation.hf_backend:TransformersBackend",
    "openai": "multiplt.generation.openai_backend:OpenAIBackend",
    "vllm": "multiplt.generation.vllm_backend:VLLMBackend",
    "replay": "multiplt.generation.replay:ReplayBackend",
}
NAMES = tuple(REGISTRY)
# --tokenizer of generate, evaluate, testgen and translate
TOKENIZER_HELP = ("tokenizer name, path or URI (default: the model's; with --backend openai none, "
                  "and given, its special tokens are sent as stop_token_ids: docs/generation.md)")


def backend_class(name: str):
    """The Backend subclass registered as `name`."""
    if name not in REGISTRY:
        raise MultipltError(f"unknown generation backend {name!r} (choose from {', '.join(NAMES)})")
    module, _, attr = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def make_backend(name: str, **options):
    """The backend called `name`, built from the options the CLI collected (unused ones ignored)."""
    return backend_class(name).from_options(**options)
