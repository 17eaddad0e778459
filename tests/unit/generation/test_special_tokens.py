"""Special tokens in the transformers and vllm backends, as MultiPL-E's HF path (automodel.py)
handles them: the prompt is tokenized with the tokenizer's default special tokens (a BOS for
Llama-family tokenizers), never ending in EOS; a completion ends at its first special token
(StarCoder2's `<file_sep>`).

The model is a real `LlamaForCausalLM` whose weights make it a bigram table (each token's
successor is fixed, whatever came before: attention and MLP write nothing), so greedy output is
known; the tokenizers are character-level ones built here, with and without a BOS post-processor."""

import sys
import types

import pytest

torch = pytest.importorskip("torch")

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


def bigram_model(positions: int = 256):
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
            model.lm_head.weight[ID[NEXT.get(VOCAB[i], "a")], i] = 10.0
    return model


@pytest.fixture
def make_backend(tmp_path):
    """A TransformersBackend loaded from a folder (the real loading path) holding the bigram model
    and the tokenizer given; it records the ids of each forward call's input."""
    def make(tok, positions: int = 256):
        folder = tmp_path / f"model-{len(list(tmp_path.iterdir()))}"
        bigram_model(positions).save_pretrained(folder)
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
