"""A dataset too small for one batch fails right after packing, before the base model's weights
are loaded, with what to do about it; the tiny recipe's first optimizer step trains (lr > 0)."""

import pytest
import torch

from multiplt import cli
from multiplt.training import loop
from multiplt.training.config import resolve
from multiplt.training.optim import build_scheduler

REQUIRED = dict(dataset="d.jsonl", base="m", lang="rkt", experiment="x", out="out")


class CharTokenizer:
    eos_token_id = 0

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [[ord(c) for c in t] for t in texts]}


def test_fewer_sequences_than_a_batch_fail_before_the_weights_load(tmp_path, capsys, monkeypatch):
    import transformers

    from multiplt.models import tokenizer

    def no_weights(*args, **kwargs):
        pytest.fail("from_pretrained was called: the data check must come before the weights load")

    monkeypatch.setattr(loop, "materialize", lambda ref, revision, workdir, what="base model": (ref, None))
    monkeypatch.setattr(tokenizer, "load_tokenizer", lambda *args, **kwargs: CharTokenizer())
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_weights)
    # 3 documents of 15 characters + EOS: 3 sequences of 16 tokens, for a batch of 4
    (tmp_path / "racket.jsonl").write_text('{"content": "(define x 1234)"}\n' * 3)
    out = tmp_path / "out"
    code = cli.main(["train", "--recipe", "tiny", "--dataset", str(tmp_path / "racket.jsonl"),
                     "--base", "base-model", "--lang", "rkt", "--experiment", "x", "--out", str(out),
                     "--seq-len", "16", "--eval-fraction", "0"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert ("multiplt train: error: only 3 packed sequences: fewer than one batch of 4 (the recipe's "
            "batch_size): add rows, or use a recipe (or --batch-size) with a smaller batch_size") in err
    assert not (out / "_multiplt_train.yaml").exists()


def test_the_tiny_recipes_first_step_trains():
    """A warm-up rises linearly from lr 0 (transformers' schedule), so the tiny recipe, whose epoch
    is a handful of steps, has none: its first step, also of a one-step run, has the full lr."""
    config = resolve("tiny", REQUIRED)
    for total_steps in (1, 5):
        optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=config.lr)
        scheduler = build_scheduler(optimizer, config.warmup_steps, total_steps, config.lr_scheduler)
        assert config.lr > 0 and scheduler.get_last_lr()[0] == pytest.approx(config.lr)
