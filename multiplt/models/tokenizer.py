"""Loading a tokenizer with a clear error for a corrupt tokenizer file.

A truncated `tokenizer.json`, or valid JSON of the wrong shape, makes `AutoTokenizer.from_pretrained`
fail with whatever the parsing code happens to raise: the tokenizers library's plain `Exception`
("Model missing. at line 1 column 20"), a `KeyError`, `TypeError`, `AttributeError` or a
`JSONDecodeError`. `load_tokenizer` turns those into one MultipltError naming the file and the
cause (the library's exception chained). It checks the files only after a load failed, and only
when one of them is corrupt is the error replaced: every other failure (a missing folder, an
unknown Hub name, a Hub that is down) reaches the caller unchanged, for its own handling.
"""

from __future__ import annotations

import contextlib
import json
import os

from multiplt.errors import MultipltError

# The tokenizer files transformers reads as JSON objects; tokenizer.json is also parsed by the
# tokenizers library, the authority on its shape.
JSON_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
              "vocab.json")


def split_specials(ids: list[int], plain: list[int], eos: int | None
                   ) -> tuple[int, list[int], list[int]]:
    """Where a tokenizer's default special tokens lie around a text: (how many ids it put before
    the text, the ids it put after it, what of those is kept: all but the EOS they end with).
    `ids`: the text tokenized with the default special tokens, `plain`: without them; `eos`:
    the EOS id. A tokenizer that adds nothing (StarCoder) gives (0, [], []); one that adds a BOS
    (Llama, CodeLlama) (1, [], []); one that also appends EOS (add_eos_token) (1, [eos], []).
    Generation's prompts (hf_backend.encode_prompt) and training's documents
    (training.data.special_layout) both keep the BOS and drop that EOS: a causal LM continues a
    prompt, and packing puts one EOS after each document. When `ids` are not the text's ids with
    tokens around them, only a last EOS that the plain ids lack counts as appended. Ids may come
    as any sequence (a tokenizer may give tuples); the lists returned are new."""
    ids, plain = list(ids), list(plain)
    if len(ids) == len(plain):
        return 0, [], []
    head = next((i for i in range(len(ids) - len(plain) + 1) if ids[i: i + len(plain)] == plain),
                None)
    if head is None:
        appended = bool(ids) and ids[-1] == eos and plain[-1:] != ids[-1:]
        return 0, (ids[-1:] if appended else []), []
    tail = ids[head + len(plain):]
    kept = list(tail)
    while kept and kept[-1] == eos:
        kept.pop()
    return head, tail, kept


def load_tokenizer(path: str, revision: str | None = None, ref: str | None = None):
    """`AutoTokenizer.from_pretrained(path, revision=revision)`; a corrupt tokenizer file is a
    MultipltError naming `ref` (what the user gave; default `path`), the file and the cause."""
    from transformers import AutoTokenizer

    with tokenizer_errors(path, revision, ref):
        return AutoTokenizer.from_pretrained(path, revision=revision)


@contextlib.contextmanager
def tokenizer_errors(path: str, revision: str | None = None, ref: str | None = None):
    """Around code that loads the tokenizer at `path` (load_tokenizer; an engine that loads it
    itself, as vLLM does): an exception while one of its files is corrupt becomes a MultipltError
    naming the file and the cause, the exception chained; any other passes unchanged."""
    try:
        yield
    except MultipltError:
        raise
    except Exception as exc:
        corrupt = corrupt_file(path, revision)
        if corrupt is None:
            raise  # not a corrupt file: the caller's error handling applies
        file, cause = corrupt
        raise MultipltError(f"cannot load the tokenizer of {ref or path!r}: {file} is corrupt: {cause}") from exc


def corrupt_file(path: str, revision: str | None = None) -> tuple[str, str] | None:
    """(file, cause) of the first corrupt tokenizer file of the folder `path` (or of the Hub
    model `path`, as far as it is in the local cache), None when all that exist are sound."""
    for name in JSON_FILES:
        file = _local_file(path, name, revision)
        if file is None:
            continue
        cause = _json_problem(file, name)
        if cause is not None:
            return file, cause
    return None


def _local_file(path: str, name: str, revision: str | None) -> str | None:
    if os.path.isdir(path):
        file = os.path.join(path, name)
        return file if os.path.isfile(file) else None
    try:  # a Hub name: its cached copy, never a download
        from huggingface_hub import try_to_load_from_cache

        file = try_to_load_from_cache(path, name, revision=revision)
    except Exception:  # noqa: BLE001 - not a valid repo id: nothing cached to check
        return None
    return file if isinstance(file, str) and os.path.isfile(file) else None


def _json_problem(file: str, name: str) -> str | None:
    try:
        with open(file, "rb") as f:
            raw = f.read()
    except OSError:
        return None  # unreadable, not corrupt: transformers' own error says so
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not UTF-8 text ({exc})"
    if not text.strip():
        return "the file is empty"
    try:
        data = json.loads(text)
    except ValueError as exc:
        return f"not valid JSON ({exc})"
    if not isinstance(data, dict):
        kind = "null" if data is None else {list: "an array", str: "a string", bool: "a boolean"}.get(
            type(data), "a number")
        return f"holds {kind}, not a JSON object"
    if name != "tokenizer.json":
        return None
    from tokenizers import Tokenizer

    try:
        Tokenizer.from_str(text)
    except Exception as exc:  # noqa: BLE001 - the tokenizers library raises plain Exception
        return f"not a tokenizer the tokenizers library reads ({exc})"
    if not isinstance(data.get("added_tokens"), list):
        return 'no "added_tokens" list'
    return None
