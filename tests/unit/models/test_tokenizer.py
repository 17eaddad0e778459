"""A corrupt tokenizer file (truncated JSON, valid JSON of the wrong shape) is one MultipltError
naming the file and the cause, the library's exception chained; every other failure to load a
tokenizer reaches the caller unchanged."""

from __future__ import annotations

import pytest

from multiplt.errors import MultipltError, PlatformError
from multiplt.models.tiny import train_tokenizer
from multiplt.models.tokenizer import load_tokenizer

DOCS = ["(define (add x y) (+ x y))\n", "local function f(x) return x end\n", "let x = 1 in x\n"] * 20


@pytest.fixture(scope="module")
def sound(tmp_path_factory):
    """A folder holding a tokenizer as `multiplt model init-tiny` saves it."""
    folder = tmp_path_factory.mktemp("tok")
    train_tokenizer(DOCS, 300).save_pretrained(folder)
    assert (folder / "tokenizer.json").is_file()
    return folder


def copy_of(sound, tmp_path):
    import shutil

    return shutil.copytree(sound, tmp_path / "tok")


def test_a_sound_tokenizer_loads(sound):
    tok = load_tokenizer(str(sound))
    assert tok.decode(tok("(define x 1)")["input_ids"]) == "(define x 1)"


def truncated(text: bytes) -> bytes:
    return text[:len(text) // 2]


@pytest.mark.parametrize("name,corrupt,cause", [
    ("tokenizer.json", truncated, "not valid JSON"),
    ("tokenizer.json", lambda _: b"", "the file is empty"),
    ("tokenizer.json", lambda _: b"\xff\xfe{}", "not UTF-8 text"),
    ("tokenizer.json", lambda _: b"[]", "holds an array, not a JSON object"),
    ("tokenizer.json", lambda _: b"null", "holds null, not a JSON object"),
    ("tokenizer.json", lambda _: b'{"a": [1, 2]}', "not a tokenizer the tokenizers library reads"),
    ("tokenizer.json", lambda _: b'{"added_tokens": []}', "not a tokenizer the tokenizers library reads (Model missing"),
    ("tokenizer.json", lambda _: b'{"added_tokens": 5}', "not a tokenizer the tokenizers library reads"),
    ("tokenizer_config.json", truncated, "not valid JSON"),
    ("tokenizer_config.json", lambda _: b'"x"', "holds a string, not a JSON object"),
])
def test_a_corrupt_tokenizer_file_is_one_error_naming_it(sound, tmp_path, name, corrupt, cause):
    folder = copy_of(sound, tmp_path)
    file = folder / name
    file.write_bytes(corrupt(file.read_bytes()))
    with pytest.raises(MultipltError) as info:
        load_tokenizer(str(folder), ref="org/given")
    message = str(info.value)
    assert message.startswith(f"cannot load the tokenizer of 'org/given': {file} is corrupt: {cause}"), message
    assert "\n" not in message and not isinstance(info.value, PlatformError)
    # the library's own exception stays chained (a JSONDecodeError, KeyError, the tokenizers' Exception ...)
    assert info.value.__cause__ is not None and not isinstance(info.value.__cause__, MultipltError)


def test_other_failures_reach_the_caller_unchanged(sound, tmp_path, monkeypatch):
    # A missing folder: transformers' own error (the callers turn it into theirs), not "corrupt".
    with pytest.raises(Exception) as info:
        load_tokenizer(str(tmp_path / "nope"))
    assert not isinstance(info.value, MultipltError)
    # A failure unrelated to the files (sound ones) is re-raised as it is, never relabelled.
    import transformers

    def broken(*args, **kwargs):
        raise RuntimeError("out of file handles")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", staticmethod(broken))
    with pytest.raises(RuntimeError, match="out of file handles"):
        load_tokenizer(str(sound))


def test_the_vllm_backend_reports_a_corrupt_tokenizer_it_failed_to_load(sound, tmp_path, monkeypatch):
    """vLLM loads the tokenizer itself: its failure while tokenizer.json is corrupt is the same one
    error; with sound files its own error is left as it is."""
    import sys
    import types

    from multiplt.generation.vllm_backend import VLLMBackend

    def engine(**kwargs):
        raise Exception("engine core initialization failed")  # what a tokenizer failure looks like there

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=engine))
    folder = copy_of(sound, tmp_path)
    (folder / "config.json").write_text("{}")
    with pytest.raises(Exception, match="engine core initialization failed"):
        VLLMBackend(str(folder))
    (folder / "tokenizer.json").write_text('{"added_tokens": []}')
    with pytest.raises(MultipltError, match=f"cannot load the tokenizer of '{folder}': {folder}/tokenizer.json "
                                            "is corrupt: not a tokenizer the tokenizers library reads"):
        VLLMBackend(str(folder))
