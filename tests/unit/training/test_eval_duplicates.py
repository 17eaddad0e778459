"""The held-out split is by document, so a text that occurs twice in the data can be held out
and trained on: prepare() counts the held-out documents whose exact text is also a training
document, warns when there are any, and the run config records the count (data:
eval_documents_in_train)."""

import logging

from multiplt.training.data import prepare
from multiplt.training.packing import split_documents


class CharTokenizer:
    eos_token_id = 0

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [[ord(c) for c in t] for t in texts]}


def test_held_out_duplicates_of_training_documents_are_counted_and_warned(caplog):
    distinct = [f"doc {i:03d} " * 3 for i in range(100)]
    texts = distinct + distinct[:60] + ["", None]  # 60 texts twice; 2 unusable rows (not counted)
    docs = distinct + distinct[:60]
    train_idx, eval_idx = split_documents(len(docs), 0.1, 42)
    expected = len([i for i in eval_idx if docs[i] in {docs[j] for j in train_idx}])
    assert expected > 0
    with caplog.at_level(logging.INFO, logger="multiplt.training"):
        packed = prepare(texts, CharTokenizer(), seq_len=16, eval_fraction=0.1, seed=42)
    assert (packed.eval_documents, packed.eval_documents_in_train) == (len(eval_idx), expected)
    described = packed.describe()
    assert (described["eval_documents"], described["eval_documents_in_train"]) == (16, expected)
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and "held-out" in r.getMessage()]
    assert len(warned) == 1 and f"{expected} of the 16 held-out documents" in warned[0].getMessage()


def test_no_duplicates_no_warning(caplog):
    with caplog.at_level(logging.INFO, logger="multiplt.training"):
        packed = prepare([f"doc {i:03d} " * 3 for i in range(100)], CharTokenizer(), seq_len=16,
                         eval_fraction=0.1, seed=42)
        none = prepare([f"doc {i:03d} " * 3 for i in range(100)], CharTokenizer(), seq_len=16,
                       eval_fraction=0.0, seed=42)
    assert (packed.eval_documents, packed.eval_documents_in_train) == (10, 0)
    assert none.describe()["eval_documents"] == none.describe()["eval_documents_in_train"] == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("none of the 10 held-out documents" in r.getMessage() for r in caplog.records)
