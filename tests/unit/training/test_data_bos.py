"""Documents are tokenized with the tokenizer's default special tokens, as MultiPL-T's training
harness tokenized them (`tokenizer(text)`, then EOS): a tokenizer that adds a BOS (CodeLlama)
packs `BOS doc EOS BOS doc EOS`, one that adds nothing (StarCoder) packs exactly what it packed
before (same tokens, same train_sha256); an EOS the tokenizer appends is dropped (packing puts
one after each document)."""

from __future__ import annotations

import hashlib

import pytest
import torch

from multiplt.training.data import prepare
from multiplt.training.packing import pack, split_documents

BOS = "<fim_pad>"  # a special token of the tiny tokenizer that plays CodeLlama's <s>
TEXTS = [f"def f{i}(x):\n    return x + {i * 7}\n" * (1 + i % 3) for i in range(60)]
SEQ_LEN, EVAL_FRACTION, SEED = 32, 0.1, 7


def _tokenizer(tiny_model, template: str | None):
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    if template is not None:
        tok._tokenizer.post_processor = TemplateProcessing(
            single=template, special_tokens=[(BOS, tok.convert_tokens_to_ids(BOS)),
                                             (tok.eos_token, tok.eos_token_id)])
    return tok


def test_a_tokenizer_that_adds_nothing_packs_the_same_data_as_before(tiny_model):
    tok = _tokenizer(tiny_model, None)
    assert tok(TEXTS[:1])["input_ids"] == tok(TEXTS[:1], add_special_tokens=False)["input_ids"]
    packed = prepare(TEXTS, tok, SEQ_LEN, EVAL_FRACTION, SEED)
    # what packing gave before: the text's tokens only, EOS after each document
    ids = tok(TEXTS, add_special_tokens=False)["input_ids"]
    train_idx, eval_idx = split_documents(len(ids), EVAL_FRACTION, SEED)
    train, _ = pack((ids[i] for i in train_idx), tok.eos_token_id, SEQ_LEN)
    evals, _ = pack((ids[i] for i in eval_idx), tok.eos_token_id, SEQ_LEN)
    assert torch.equal(packed.train, train) and torch.equal(packed.eval, evals)
    assert packed.sha256 == hashlib.sha256(train.numpy().tobytes()).hexdigest()
    assert packed.n_tokens == sum(len(x) + 1 for x in ids)


@pytest.mark.parametrize("template", [f"{BOS} $A", f"{BOS} $A <|endoftext|>"],
                         ids=["bos", "bos-and-eos"])
def test_each_document_starts_with_the_bos_the_tokenizer_adds(tiny_model, template):
    tok = _tokenizer(tiny_model, template)
    bos, eos = tok.convert_tokens_to_ids(BOS), tok.eos_token_id
    assert tok(TEXTS[:1])["input_ids"][0][0] == bos
    packed = prepare(TEXTS, tok, SEQ_LEN, EVAL_FRACTION, SEED)
    ids = tok(TEXTS, add_special_tokens=False)["input_ids"]
    train_idx, eval_idx = split_documents(len(ids), EVAL_FRACTION, SEED)
    for got, idx in ((packed.train, train_idx), (packed.eval, eval_idx)):
        # BOS doc EOS BOS doc EOS ...: one BOS per document, one EOS after it, nothing doubled
        stream = [t for i in idx for t in [bos] + ids[i] + [eos]]
        flat = got.flatten().tolist()
        assert flat == stream[:len(flat)]
    assert packed.n_tokens == sum(len(x) + 2 for x in ids)
