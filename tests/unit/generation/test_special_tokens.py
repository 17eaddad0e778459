"""Special tokens in the transformers, vllm and openai backends, as MultiPL-E's HF path
(automodel.py) handles them: the prompt is tokenized with the tokenizer's default special tokens
(a BOS for Llama-family tokenizers), never ending in EOS; a completion ends at its first special
token (StarCoder2's `<file_sep>`), and the transformers backend's rows end there too. Over-long
prompts: the vllm backend cuts them as the transformers backend does.

The model is a real `LlamaForCausalLM` whose weights make it a bigram table (each token's
successor is fixed, whatever came before: attention and MLP write nothing), so greedy output is
known; the tokenizers are character-level ones built here, with and without a BOS post-processor."""

import sys
import types

import pytest

torch = pytest.importorskip("torch")

from multiplt.errors import MultipltError  # noqa: E402
from multiplt.generation.base import Request, Sampling  # noqa: E402
from multiplt.generation.hf_backend import TransformersBackend  # noqa: E402

VOCAB = ["<s>", "</s>", "<file_sep>", "a", "b", "c", "d", " ", "\n"]
ID = {t: i for i, t in enumerate(VOCAB)}
BOS, EOS, FILE_SEP = 0, 1, 2
# each token's successor: after "b" the model writes " c<file_sep>da" and then EOS
NEXT = {"b": " ", " ": "c", "c": "<file_sep>", "<file_sep>": "d", "d": "a", "a": "</s>"}
GREEDY = Sampling(temperature=0.0, top_p=1.0, max_new_tokens=12, stop=(), seed=0)


def tokenizer(template: str | None = None):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(ID, unk_token="</s>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")  # one token per character
    tok.decoder = decoders.Fuse()
    if template:  # what Llama-family tokenizers do: "<s> $A" (add_bos_token), "... </s>" (add_eos_token)
        tok.post_processor = processors.TemplateProcessing(single=template,
                                                           special_tokens=[("<s>", BOS), ("</s>", EOS)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   additional_special_tokens=["<file_sep>"], clean_up_tokenization_spaces=False)


def bigram_model(positions: int = 256, successors: dict[str, str] = NEXT):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(VOCAB), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=positions,
                         bos_token_id=BOS, eos_token_id=EOS, pad_token_id=EOS, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for norm in (model.model.norm, *(m for layer in model.model.layers
                                         for m in (layer.input_layernorm, layer.post_attention_layernorm))):
            norm.weight.fill_(1.0)
        for i in range(len(VOCAB)):
            model.model.embed_tokens.weight[i, i] = 1.0
            model.lm_head.weight[ID[successors.get(VOCAB[i], "a")], i] = 10.0
    return model


@pytest.fixture
def make_backend(tmp_path):
    """A TransformersBackend loaded from a folder (the real loading path) holding the bigram model
    and the tokenizer given; it records the ids of each forward call's input."""
    def make(tok, positions: int = 256, successors: dict[str, str] = NEXT):
        folder = tmp_path / f"model-{len(list(tmp_path.iterdir()))}"
        bigram_model(positions, successors).save_pretrained(folder)
        tok.save_pretrained(folder)
        backend = TransformersBackend(str(folder), device="cpu")
        backend.fed = []
        backend.model.model.embed_tokens.register_forward_hook(
            lambda module, args, out: backend.fed.append(args[0].tolist()))
        return backend
    return make


def run(backend, prompt: str, sampling: Sampling = GREEDY) -> str:
    [[(_, text)]] = list(backend.generate([Request("p", prompt, 0)], sampling))
    return text


def test_the_prompt_starts_with_bos_when_the_tokenizer_adds_one(make_backend):
    backend = make_backend(tokenizer("<s> $A"))
    run(backend, "  ab\n")
    assert backend.fed[0] == [[BOS, ID["a"], ID["b"]]]  # stripped, then the tokenizer's BOS in front


def test_the_prompt_is_unchanged_for_a_tokenizer_that_adds_nothing(make_backend):
    backend = make_backend(tokenizer())
    run(backend, "  ab\n")
    assert backend.fed[0] == [[ID["a"], ID["b"]]]


def test_an_eos_the_tokenizer_appends_is_dropped(make_backend):
    """A causal LM continues the prompt: a trailing EOS (add_eos_token) is not fed."""
    backend = make_backend(tokenizer("<s> $A </s>"))
    assert run(backend, "ab") == " c"
    assert backend.fed[0] == [[BOS, ID["a"], ID["b"]]]


def test_a_prompt_cut_to_fit_keeps_its_bos(make_backend):
    backend = make_backend(tokenizer("<s> $A"), positions=16)
    sampling = Sampling(temperature=0.0, top_p=1.0, max_new_tokens=4, stop=(), seed=0)
    run(backend, "ab" * 15, sampling)
    keep = 16 - 4  # the context less the room for new tokens: BOS and the text's last 11 ids
    assert backend.fed[0] == [[BOS] + ([ID["a"], ID["b"]] * 15)[-(keep - 1):]]


def test_the_tiny_models_tokenizer_gives_the_same_ids_as_before(tiny_model):
    """StarCoder-style: the tokenizer adds no special tokens, so the prompt ids are the text's."""
    backend = TransformersBackend(tiny_model, device="cpu")
    for text in ["#lang racket\n(define (add x y)", "local function f(x)", "<|endoftext|>x", "a"]:
        assert backend._encode(text) == (backend.tokenizer(text, add_special_tokens=False)["input_ids"], 0)


def test_one_set_of_special_ids_for_every_backend(tmp_path):
    """hf_backend.special_ids: the tokenizer's special ids with its EOS (already among them for
    a transformers tokenizer: the vllm backend, which left EOS out, stops at the same ids), and
    the model's EOS for a tokenizer without one; a scripted tokenizer without the list has its
    EOS only. The openai backend sends the same ids for the tokenizer it loads."""
    import types

    from multiplt.generation.hf_backend import special_ids
    from multiplt.generation.openai_backend import _special_ids

    tok = tokenizer()
    assert special_ids(tok) == [BOS, EOS, FILE_SEP] == sorted(tok.all_special_ids)
    tok.save_pretrained(tmp_path)
    assert _special_ids(str(tmp_path)) == [BOS, EOS, FILE_SEP]
    assert special_ids(types.SimpleNamespace(eos_token_id=7)) == [7]
    assert special_ids(types.SimpleNamespace(eos_token_id=None), eos_token_id=5) == [5]
    assert special_ids(types.SimpleNamespace(all_special_ids=[3, 1], eos_token_id=None), 9) == [1, 3, 9]


def test_a_completion_ends_at_its_first_special_token(make_backend):
    """The model writes " c<file_sep>da" then EOS: the completion is " c", as MultiPL-E's HF path
    decodes it."""
    backend = make_backend(tokenizer())
    assert run(backend, "ab") == " c"


def test_a_stop_string_after_the_special_token_does_not_keep_it(make_backend):
    """Stop strings are applied to the text cut at the special token (MultiPL-E's order)."""
    backend = make_backend(tokenizer())
    sampling = Sampling(temperature=0.0, top_p=1.0, max_new_tokens=12, stop=("da",), seed=0)
    assert run(backend, "ab", sampling) == " c"


# after "b" the model writes " c<file_sep>" and then "da" for ever: no EOS ends the row
LOOP = {**NEXT, "a": "d"}


def old_path(monkeypatch):
    """The transformers backend as it was: rows end at EOS, a stop string or their token limit
    only (the cut at the first special token is made when the completion is decoded)."""
    from multiplt.generation import sampler

    real = sampler.SamplerOptions
    monkeypatch.setattr(sampler, "SamplerOptions", lambda **kw: real(**{**kw, "stop_token_ids": frozenset()}))


@pytest.mark.parametrize("before", [False, True])
def test_a_row_ends_at_its_first_special_token(make_backend, monkeypatch, before):
    """The row draws " c<file_sep>" and is ended at the check after it (rows are checked every
    `check_every` steps): 1 prefill and 15 decode steps instead of running to its 40 tokens.
    `before`: the backend as it was, which decodes the same text from all 40."""
    from multiplt.generation.sampler import SamplerOptions

    if before:
        old_path(monkeypatch)
    backend = make_backend(tokenizer(), successors=LOOP)
    sampling = Sampling(temperature=0.0, top_p=1.0, max_new_tokens=40, stop=(), seed=0)
    assert run(backend, "ab", sampling) == " c"
    assert len(backend.fed) == (40 if before else SamplerOptions().check_every)


def _random_gptbigcode(multi_query: bool):
    import transformers

    config = transformers.GPTBigCodeConfig(n_layer=2, n_embd=64, n_head=4, vocab_size=512,
                                           multi_query=multi_query, n_positions=512)
    torch.manual_seed(0)
    model = transformers.GPTBigCodeForCausalLM(config).eval()
    model.config._attn_implementation = "sdpa"
    return model


@pytest.mark.parametrize("engine", ["slots", "hf", "fixed"])
def test_the_sampler_ends_a_row_at_the_step_of_a_stop_token_id(engine):
    """Checking every step, a row that draws one of `stop_token_ids` takes no step after it: the
    model runs `len(tokens) - (k + 1)` steps fewer than for the whole row, where the row's k-th
    token is the first stop token id, and the tokens are the row's first k. The slot engine (multi-query
    GPTBigCode), transformers' forward and cache (continuous.py) and the fixed batches of
    sample_batch; no EOS, so without stop token ids the row runs to its limit."""
    from multiplt.generation.continuous import Job, sample_continuous
    from multiplt.generation.sampler import SamplerOptions, sample_batch

    model = _random_gptbigcode(multi_query=engine == "slots")
    forwards = []
    model.get_input_embeddings().register_forward_hook(lambda *_: forwards.append(1))
    prompt = list(range(5, 25))

    def sample(stop_ids):
        forwards.clear()
        opts = SamplerOptions(temperature=1.0, top_p=0.9, max_new_tokens=20, check_every=1,
                              stop_token_ids=frozenset(stop_ids))
        if engine == "fixed":
            [toks] = sample_batch(model, [prompt], [7], opts)
        else:
            [[(_, toks)]] = list(sample_continuous(model, [Job("p", prompt, 7, 20)], opts,
                                                   slots=engine == "slots"))
        return toks, len(forwards)

    whole, steps = sample(())
    assert len(whole) == 20
    k = next(i for i in range(3, 20) if whole[i] not in whole[:i])  # a token the row draws first there
    toks, fewer = sample({whole[k], 511 if whole[k] != 511 else 510})
    assert toks == whole[:k]
    assert steps - fewer == len(whole) - (k + 1)


def test_special_token_ends_leave_the_tiny_models_completions_unchanged(tiny_model, monkeypatch):
    """The tiny model (slot engine) with a token it often draws taken as special: rows end there,
    fewer tokens are drawn, and every completion is byte-identical to the backend as it was
    (rows running on, the completion cut when decoded); a run in two parts (a resume) gives the
    same completions again. Three rows in flight: a row that ends early frees its place sooner."""
    from multiplt.generation import sampler

    backend = TransformersBackend(tiny_model, batch_size=3, device="cpu")
    drawn_rows = []  # rows given a token, per step
    choose = sampler.TokenChooser.__call__
    monkeypatch.setattr(sampler.TokenChooser, "__call__", lambda self, logits, *a, **kw: drawn_rows.append(
        logits.shape[0]) or choose(self, logits, *a, **kw))
    prompts = {"p0": "#lang racket\n(define (add x y)", "p1": "def f(x):\n    return", "p2": "local x ="}
    reqs = [Request(p, text, i) for p, text in prompts.items() for i in range(5)]
    sampling = Sampling(temperature=0.8, top_p=0.95, max_new_tokens=48, stop=(), seed=3)

    def generate(requests=reqs):
        drawn_rows.clear()
        texts = {(r.problem, r.index): t for group in backend.generate(requests, sampling) for r, t in group}
        return texts, sum(drawn_rows)

    drawn = []
    with monkeypatch.context() as m:
        old_path(m)
        real = TransformersBackend._completion
        m.setattr(TransformersBackend, "_completion", lambda self, ids: drawn.append(ids) or real(self, ids))
        generate()
    counts = {}
    for ids in drawn:  # the most frequent token after the first two of a row
        for t in set(ids[2:]) - {backend.eos_token_id}:
            counts[t] = counts.get(t, 0) + 1
    special = max(counts, key=counts.get)
    monkeypatch.setattr(backend, "_special_ids", frozenset({backend.eos_token_id, special}))
    with monkeypatch.context() as m:
        old_path(m)
        before, before_tokens = generate()
    after, tokens = generate()
    assert after == before
    early = [ids.index(special) for ids in drawn if special in ids[:24]]  # rows that end early
    assert len(early) >= 2
    # a row that draws it as its i-th token draws at most i + 1 + check_every + 1 (found at the
    # next check, one iteration late on the slot engine) instead of its 48 (+ 1)
    every = sampler.SamplerOptions().check_every
    assert before_tokens - tokens >= sum(48 - (i + 2 + every) for i in early) > 0
    first, _ = generate(reqs[:7])
    rest, _ = generate(reqs[7:])
    assert {**first, **rest} == after


def test_the_vllm_backend_stops_at_the_tokenizers_special_tokens(tmp_path, monkeypatch):
    """vLLM is not installed here: a stand-in records what the backend asks of it. Every special id
    is a stop token id (vLLM ends the sequence there and leaves a special token out of the text)."""
    from multiplt.generation.vllm_backend import VLLMBackend

    tok = tokenizer("<s> $A")
    tok.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    calls = []

    class LLM:
        def __init__(self, **kwargs):
            pass

        def get_tokenizer(self):
            return tok

        def generate(self, prompts, params):
            calls.append((prompts, params))
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text=" c")]) for _ in prompts]

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, SamplingParams=dict))
    backend = VLLMBackend(str(tmp_path))
    [[(_, text)]] = list(backend.generate([Request("p", " ab\n", 0)], GREEDY))
    [(prompts, [params])] = calls
    assert text == " c" and prompts == ["ab"]
    assert params["stop_token_ids"] == [BOS, EOS, FILE_SEP]


def test_the_vllm_backend_cuts_over_long_prompts_as_the_transformers_backend(tmp_path, monkeypatch, make_backend):
    """vLLM fails the whole batch when one prompt plus its max_tokens passes max_model_len (the
    stand-in does so too). A prompt that fits goes as text, as before; one that fills the context
    is cut as the transformers backend cuts it (its BOS and end kept, room for the new tokens)
    and one near the end gets the tokens that fit; both go as token ids."""
    from multiplt.generation.vllm_backend import MAX_MODEL_LEN, VLLMBackend

    tok = tokenizer("<s> $A")
    tok.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    calls = []

    class LLM:
        def __init__(self, max_model_len, **kwargs):
            self.max_model_len = max_model_len

        def get_tokenizer(self):
            return tok

        def generate(self, prompts, params):
            calls.append((prompts, params))
            for prompt, p in zip(prompts, params):
                ids = tok(prompt)["input_ids"] if isinstance(prompt, str) else prompt["prompt_token_ids"]
                if len(ids) + p["max_tokens"] > self.max_model_len:
                    raise ValueError(f"This model's maximum context length is {self.max_model_len} tokens")
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text=" c")]) for _ in prompts]

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, SamplingParams=dict))
    backend = VLLMBackend(str(tmp_path))
    sampling = Sampling(temperature=0.0, top_p=1.0, max_new_tokens=512, stop=(), seed=0)
    prompts = {"short": " ab\n", "near": "ab" * 800, "long": "ab" * 1100}
    reqs = [Request(name, text, i) for name, text in prompts.items() for i in range(2)]
    got = [(r.problem, text) for group in backend.generate(reqs, sampling) for r, text in group]
    assert got == [(r.problem, " c") for r in reqs]
    [(sent, params)] = calls
    assert sent[:2] == ["ab", "ab"] and [p["max_tokens"] for p in params[:2]] == [512, 512]
    near = [BOS] + [ID["a"], ID["b"]] * 800
    assert sent[2:4] == [{"prompt_token_ids": near}] * 2
    assert [p["max_tokens"] for p in params[2:4]] == [MAX_MODEL_LEN - len(near)] * 2
    # the transformers backend (a model of the same context) feeds the long prompt the same way
    hf = make_backend(tok, positions=MAX_MODEL_LEN)
    assert run(hf, prompts["long"], sampling) == " c"
    [cut] = hf.fed[0]
    assert len(cut) == MAX_MODEL_LEN - 512 and cut[0] == BOS
    assert sent[4:6] == [{"prompt_token_ids": cut}] * 2
    assert [p["max_tokens"] for p in params[4:6]] == [512] * 2


@pytest.fixture
def vllm_server():
    """A completions server (tests/support) that answers as vLLM does with the special tokens of
    `tokenizer()`; `.make(**options)` starts another with other options."""
    from tests.support.completions_server import CompletionsServer

    servers = []

    def make(**options):
        servers.append(CompletionsServer(models=["m"], **options).start())
        return servers[-1]

    server = make(special_tokens={t: ID[t] for t in ("<s>", "</s>", "<file_sep>")})
    server.make = make
    yield server
    for s in servers:
        s.stop()


def openai_backend(server, tokenizer_dir=None, concurrency=1):
    from multiplt.generation.backends import make_backend

    return make_backend("openai", model="m", api_base=server.url, concurrency=concurrency,
                        tokenizer=None if tokenizer_dir is None else str(tokenizer_dir))


from multiplt.generation.openai_backend import PROBE_PROMPT  # noqa: E402

OPENAI_SAMPLING = Sampling(temperature=0.2, top_p=0.95, max_new_tokens=64, stop=("\n(define",), seed=0)


def test_the_openai_backend_asks_vllm_to_stop_at_the_tokenizers_special_tokens(tmp_path, vllm_server):
    """With --tokenizer the special ids go in vLLM's stop_token_ids: the completion ends at
    `<file_sep>` as with the transformers backend. Without it vLLM leaves the token out of the
    text and goes on into the next file, which our cut cannot see."""
    tokenizer("<s> $A").save_pretrained(tmp_path)
    vllm_server.record("ab", ["A<file_sep>B\n(define y)"])
    reqs = [Request("p", " ab\n", i) for i in range(2)]
    backend = openai_backend(vllm_server, tmp_path)
    assert [t for group in backend.generate(reqs, OPENAI_SAMPLING) for _, t in group] == ["A", "A"]
    bodies = [body for method, _, body in vllm_server.requests if method == "POST"]
    # the first asks whether the server takes the field (unrecorded here: a 400 about the prompt)
    assert [(b["prompt"], b["max_tokens"]) for b in bodies[:1]] == [(PROBE_PROMPT, 1)]
    assert [b["stop_token_ids"] for b in bodies] == [[BOS, EOS, FILE_SEP]] * 3
    described = backend.describe()
    assert described.tokenizer == str(tmp_path) and described.stop_token_ids_sent is True
    assert len(vllm_server.requests) == 3  # asked once
    plain = openai_backend(vllm_server)
    assert [t for group in plain.generate(reqs[:1], OPENAI_SAMPLING) for _, t in group] == ["AB"]
    assert "stop_token_ids" not in vllm_server.requests[-1][2]
    assert "stop_token_ids_sent" not in plain.describe().as_record()


@pytest.mark.parametrize("concurrency", [1, 3])
def test_a_server_that_refuses_stop_token_ids_is_asked_again_without(tmp_path, vllm_server, caplog,
                                                                     concurrency):
    """A server that refuses fields OpenAI does not define (as api.openai.com: HTTP 400 naming
    the field) refuses the one short request that asks, before any completion: no request of the
    run carries stop_token_ids (and the run record says so), the warning is logged once. Any
    other 400 is still an error, not retried."""
    tokenizer().save_pretrained(tmp_path)
    server = vllm_server.make(openai_fields_only=True)
    server.record("x", ["one", "two", "three"])
    backend = openai_backend(server, tmp_path, concurrency)
    reqs = [Request("p", "x", i) for i in range(3)]
    with caplog.at_level("WARNING", logger="multiplt.generation"):
        got = [t for group in backend.generate(reqs, OPENAI_SAMPLING) for _, t in group]
    assert sorted(got) == ["one", "three", "two"]
    asked = [("stop_token_ids" in body, body["prompt"]) for method, _, body in server.requests
             if method == "POST"]
    assert asked == [(True, PROBE_PROMPT)] + [(False, "x")] * 3
    assert backend.describe().stop_token_ids_sent is False and len(server.requests) == 4
    assert [r.getMessage() for r in caplog.records if "stop_token_ids" in r.getMessage()] == [
        f"openai backend: {server.url}/completions refuses stop_token_ids (Unrecognized request "
        "argument supplied: stop_token_ids): asking without it, so completions do not end at the "
        "tokenizer's special tokens"]
    other = openai_backend(vllm_server, tmp_path)
    with pytest.raises(MultipltError, match="answered 400: .*no recorded completion"):
        list(other.generate([Request("q", "not recorded", 0)], OPENAI_SAMPLING))
    assert vllm_server.requests[-1][2]["stop_token_ids"] and len(vllm_server.requests) == 2
