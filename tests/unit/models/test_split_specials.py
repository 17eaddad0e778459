"""split_specials: where a tokenizer's default special tokens lie around a text, the one rule
that generation's prompts (hf_backend.encode_prompt) and training's documents
(training.data.special_layout) share: the BOS stays, an appended EOS goes."""

from __future__ import annotations

import pytest

from multiplt.models.tokenizer import split_specials

TEXT = [7, 8, 9]
BOS, EOS = 1, 2


@pytest.mark.parametrize("ids, expected", [
    (TEXT, (0, [], [])),                            # StarCoder: nothing added
    ([BOS, *TEXT], (1, [], [])),                    # Llama, CodeLlama: a BOS
    ([BOS, *TEXT, EOS], (1, [EOS], [])),            # add_eos_token: the EOS goes
    ([*TEXT, EOS], (0, [EOS], [])),
    ([BOS, *TEXT, 5, EOS, EOS], (1, [5, EOS, EOS], [5])),  # a non-EOS suffix stays
    ([BOS, 7, 4, 9, EOS], (0, [EOS], [])),          # not the text's ids around: a last EOS goes
    ([BOS, 7, 4, 9, 5], (0, [], [])),               # ... and nothing else
])
def test_split_specials_keeps_what_comes_before_and_drops_an_appended_eos(ids, expected):
    assert split_specials(ids, TEXT, EOS) == expected


@pytest.mark.parametrize("as_tuples", [False, True])
def test_encode_prompt_and_special_layout_agree_on_an_eos_appending_tokenizer(as_tuples):
    """A scripted tokenizer that adds BOS and EOS: the prompt keeps the BOS and loses the EOS,
    and a training document is laid out the same way; the same when it gives tuples."""
    from multiplt.generation.hf_backend import encode_prompt
    from multiplt.training.data import special_layout, tokenize

    class Scripted:
        eos_token_id = EOS

        def _one(self, text, add_special_tokens=True):
            plain = [ord(c) for c in text]
            ids = [BOS, *plain, EOS] if add_special_tokens else plain
            return tuple(ids) if as_tuples else ids

        def __call__(self, text, add_special_tokens=True):
            if isinstance(text, list):
                return {"input_ids": [self._one(t, add_special_tokens) for t in text]}
            return {"input_ids": self._one(text, add_special_tokens)}

    tok = Scripted()
    assert encode_prompt(tok, "ab", EOS) == ([BOS, ord("a"), ord("b")], 1)
    assert special_layout(tok) == ([EOS], [])
    assert tokenize(["ab", "c"], tok) == [[BOS, ord("a"), ord("b")], [BOS, ord("c")]]
