"""Stop strings with a scripted token stream: a fake causal LM whose next token is fixed by a
script (chosen by the prompt's last token), driven through the transformers backend and our
sampler, so the real batching, early finishing, compaction and stop cutting run."""

import types

import pytest

torch = pytest.importorskip("torch")

from multiplt.generation.base import Request, Sampling  # noqa: E402
from multiplt.generation.hf_backend import TransformersBackend  # noqa: E402

VOCAB = ["<eos>", "<pad>", "  (+", " x", " y", ")", ")\n", "(def", "ine (g)", " 1)", "\n;;", "A", "B", "C"]
EOS, PAD = 0, 1
SCRIPTS = {
    11: [2, 3, 4, 6, 7, 8, 9, 6, 10] + [4] * 20,  # "\n(define" split over ")\n" + "(def" + "ine"
    12: [2, 3, 5, 0, 9, 9, 9] + [4] * 20,          # EOS after 3 tokens
    13: [2, 4, 6, 10, 3, 6, 7, 8, 9] + [3] * 20,   # "\n;" comes before "\n(define"
}


class ScriptedCache:
    def __init__(self, scripts):
        self.scripts, self.step = scripts, 0

    def batch_select_indices(self, idx):
        self.scripts = [self.scripts[i] for i in idx.tolist()]


class ScriptedLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the sampler a device
        self.config = types.SimpleNamespace(multi_query=False)
        self.calls = 0

    def forward(self, input_ids, attention_mask=None, position_ids=None, cache=None,
                use_cache=True, logits_to_keep=0):
        self.calls += 1
        if cache is None:  # prefill: pick each row's script by its prompt's last token
            cache = ScriptedCache([SCRIPTS[int(t)] for t in input_ids[:, -1]])
        else:
            cache.step += 1
        logits = torch.full((input_ids.shape[0], 1, len(VOCAB)), -1e4)
        for row, script in enumerate(cache.scripts):
            logits[row, 0, script[cache.step]] = 1e4
        return types.SimpleNamespace(logits=logits, cache=cache)


class ScriptedTokenizer:
    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(text[-1]) - ord("A") + 11]}

    def decode(self, ids, skip_special_tokens=False):
        return "".join(VOCAB[i] for i in ids)


def backend(batch_size):
    b = TransformersBackend.__new__(TransformersBackend)
    b.model, b.tokenizer, b.batch_size = ScriptedLM(), ScriptedTokenizer(), batch_size
    b.eos_token_id, b.pad_token_id, b.max_positions = EOS, PAD, None
    return b


@pytest.mark.parametrize("batch_size", [1, 3])
def test_scripted_stream_cut_at_earliest_stop(batch_size):
    b = backend(batch_size)
    requests = [Request("p1", "prompt A", 0), Request("p2", "prompt B", 0), Request("p3", "prompt C", 0)]
    sampling = Sampling(temperature=0.8, top_p=0.95, max_new_tokens=25, stop=("\n(define", "\n;"))
    got = {r.problem: text for group in b.generate(requests, sampling) for r, text in group}
    assert got == {"p1": "  (+ x y)", "p2": "  (+ x)", "p3": "  (+ y)\n"}
    # every row finished (stop, EOS) long before the 25-token limit
    assert b.model.calls < 25 * (3 // batch_size)


def test_scripted_stream_token_limit_without_stop():
    b = backend(2)
    sampling = Sampling(temperature=0.0, top_p=1.0, max_new_tokens=3, stop=())
    got = [text for group in b.generate([Request("p1", "A", 0)], sampling) for _, text in group]
    assert got == ["  (+ x y"]
