"""The faster sampling pieces give exactly the tokens of the reference ones: int32 noise,
top-k candidate top-p, and the preallocated KV cache (tiny random GPTBigCode)."""

import inspect

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from multiplt.generation import kv_cache, mqa_attention  # noqa: E402
from multiplt.generation.noise import gumbel_noise32, gumbel_noise_at  # noqa: E402
from multiplt.generation.sampler import (SamplerOptions, choose_tokens,  # noqa: E402
                                         choose_tokens_reference, sample_batch)
from multiplt.generation.seeds import gumbel_noise  # noqa: E402


def test_int32_noise_equals_int64_noise():
    seeds = torch.tensor([0, 1, 7, 2**31 - 1, 123456789, 2**30 + 5])
    for step in (0, 1, 15, 511, 4096, 10**6):
        ref = gumbel_noise(seeds, step, 5000)
        assert torch.equal(gumbel_noise32(seeds, step, 5000), ref)
        ids = torch.randint(0, 5000, (len(seeds), 33), generator=torch.Generator().manual_seed(step))
        assert torch.equal(gumbel_noise_at(seeds, step, ids), ref.gather(1, ids))


@pytest.mark.parametrize("scale,quantize", [(8.0, False), (1.0, False), (0.05, False), (6.0, True),
                                            (6.0, torch.bfloat16), (0.9, torch.bfloat16), (3.0, torch.float16)])
@pytest.mark.parametrize("temperature,top_p", [(0.2, 0.95), (1.0, 0.9), (0.7, 0.5), (1.0, 1.0)])
def test_choose_tokens_equals_reference(scale, quantize, temperature, top_p, monkeypatch):
    from multiplt.generation import sampler

    monkeypatch.setattr(sampler, "HALF_TOPK", True)  # half logits: the top-k reads them as they come
    monkeypatch.setattr(sampler, "HALF_TOPK_DEVICES", ("cuda", "cpu"))  # as on the GPU
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(64, 3000, generator=gen) * scale
    if quantize is True:  # many exact ties, as bf16 logits have
        logits = logits.to(torch.bfloat16).float().round()
    elif quantize:  # half-precision logits as the model gives them (the top-k reads them as such)
        logits = logits.to(quantize)
    logits[:, 5] = float("-inf")  # a suppressed EOS
    seeds = torch.arange(64) * 7919
    for step in range(4):
        ref = choose_tokens_reference(logits, seeds, step, temperature, top_p)
        for k in (1, 8, 256, 5000):
            for single in (False, True):
                got = choose_tokens(logits, seeds, step, temperature, top_p, candidates=k,
                                    single=single)
                assert torch.equal(got, ref), (step, k, single)


def test_choose_tokens_fast_path_is_taken(monkeypatch):
    """Peaked rows never reach the full sort."""
    from multiplt.generation import sampler

    calls = []
    real = sampler._sort_path
    monkeypatch.setattr(sampler, "_sort_path", lambda x, *a: calls.append(x.shape[0]) or real(x, *a))
    logits = torch.randn(32, 3000, generator=torch.Generator().manual_seed(1)) * 10
    choose_tokens(logits, torch.arange(32), 0, 0.2, 0.95)
    assert calls == []


def _tiny(multi_query: bool):
    config = transformers.GPTBigCodeConfig(n_layer=2, n_embd=64, n_head=4, vocab_size=512,
                                           multi_query=multi_query, n_positions=512)
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    model = transformers.GPTBigCodeForCausalLM(config).eval()
    model.config._attn_implementation = "sdpa"
    return model


def _prompts():
    gen = torch.Generator().manual_seed(2)
    return [torch.randint(1, 512, (n,), generator=gen).tolist() for n in (3, 9, 9, 17, 1, 12)]


@pytest.mark.parametrize("multi_query,mqa", [(True, False), (True, True), (False, False)])
def test_preallocated_cache_same_tokens_as_dynamic_cache(multi_query, mqa):
    model = _tiny(multi_query)
    if mqa:
        assert mqa_attention.enable(model)
    prompts = _prompts()
    seeds = list(range(100, 100 + len(prompts)))
    for eos in (None, 3, 7):  # with an EOS some rows finish early: compaction of the cache
        opts = SamplerOptions(temperature=1.0, top_p=0.9, max_new_tokens=24, eos_token_id=eos,
                              check_every=3)
        ref = sample_batch(model, prompts, seeds, opts, preallocate=False,
                           chooser=choose_tokens_reference)
        assert sample_batch(model, prompts, seeds, opts) == ref
        assert sample_batch(model, prompts, seeds, opts, preallocate=False) == ref


def test_preallocate_converts_and_matches_dynamic_logits():
    model = _tiny(True)
    ids = torch.randint(1, 512, (4, 6), generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        out_a = model(input_ids=ids, use_cache=True)
        out_b = model(input_ids=ids, use_cache=True)
        cache_a = getattr(out_a, "cache", None) or out_a.past_key_values
        cache_b = getattr(out_b, "cache", None) or out_b.past_key_values
        assert kv_cache.preallocate(cache_a, 2)  # room for 2, grows past it
        kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        keep = torch.tensor([0, 2, 3])
        for step in range(5):
            tok = torch.full((4 if step < 2 else 3, 1), step + 1)
            if step == 2:
                cache_a.batch_select_indices(keep)
                cache_b.batch_select_indices(keep)
            la = model(input_ids=tok, use_cache=True, **{kw: cache_a}).logits
            lb = model(input_ids=tok, use_cache=True, **{kw: cache_b}).logits
            assert torch.allclose(la, lb, atol=1e-6, rtol=0)
            assert cache_a.get_seq_length() == cache_b.get_seq_length() == 7 + step
    assert type(cache_a.layers[0]).__name__ == "PreallocatedLayer"


def test_preallocate_refuses_unknown_caches():
    class Other:
        layers = [object()]

    assert kv_cache.preallocate(Other(), 4) is False
    assert kv_cache.preallocate(object(), 4) is False


def test_token_chooser_same_tokens_on_either_path():
    from multiplt.generation.sampler import TokenChooser

    gen = torch.Generator().manual_seed(4)
    chooser = TokenChooser(candidates=16, probe_every=3)
    seeds = torch.arange(40) + 11
    for step in range(12):
        scale = 0.05 if step < 6 else 10.0  # flat (full-sort path), then peaked (top-k path)
        logits = torch.randn(40, 2000, generator=gen) * scale
        ref = choose_tokens_reference(logits, seeds, step, 0.8, 0.9)
        assert torch.equal(chooser(logits, seeds, step, 0.8, 0.9), ref)
        if step == 4:
            assert chooser.sort_until > step  # flat rows: straight to the full sort
    assert chooser.sort_until < 12


def test_noise_is_finite_everywhere():
    """No token's noise may be infinite: an infinite value wins the argmax whatever the logit,
    even for a token top-p filtered out (-inf + inf = NaN, which argmax takes)."""
    seeds = torch.arange(2000)
    noise = gumbel_noise(seeds, 3, 20000)
    assert bool(torch.isfinite(noise).all())
    # the extreme hash values map to finite noise too
    from multiplt.generation.noise import gumbel_noise_at

    extreme = gumbel_noise_at(seeds[:1], 3, torch.arange(20000))
    assert bool(torch.isfinite(extreme).all())
    logits = torch.randn(64, 20000, generator=torch.Generator().manual_seed(0)) * 10
    logits[:, 7] = float("-inf")  # suppressed: must never be chosen
    for step in range(8):
        tokens = choose_tokens(logits, seeds[:64], step, 0.2, 0.95)
        assert not bool((tokens == 7).any())


def test_token_chooser_widens_its_candidates_before_the_full_sort():
    """Rows whose nucleus is not among the candidates: the chooser first looks among 4x more
    (same tokens), and only past max_candidates goes to the full sort."""
    from multiplt.generation.sampler import TokenChooser

    gen = torch.Generator().manual_seed(5)
    seeds = torch.arange(40) + 7
    for scale, widths_then, sorts in ((3.0, [64, 64, 64], False), (1.0, [64, 64, 64], True)):
        chooser = TokenChooser(candidates=16, probe_every=50, max_candidates=64)
        widths = []
        for step in range(3):
            logits = torch.randn(40, 2000, generator=gen) * scale
            assert torch.equal(chooser(logits, seeds, step, 0.8, 0.9),
                               choose_tokens_reference(logits, seeds, step, 0.8, 0.9))
            widths.append(chooser.candidates)
        assert widths == widths_then and (chooser.sort_until > 0) == sorts, scale


def test_nucleus_keeps_every_token_tied_with_its_edge():
    """Top-p keeps all tokens tied with the smallest kept logit: the nucleus does not depend on
    how a sort orders equal values."""
    from multiplt.generation.sampler import _top_p_filter

    # probabilities ~ 0.5, 0.12 x 4 (tied), tail: top_p 0.55 reaches into the tied group
    x = torch.tensor([[2.0, 0.6, 0.6, 0.6, 0.6] + [-3.0] * 20])
    for perm in (torch.arange(25), torch.randperm(25, generator=torch.Generator().manual_seed(0))):
        kept = torch.isfinite(_top_p_filter(x[:, perm], 0.55))[0]
        assert sorted(perm[kept].tolist()) == [0, 1, 2, 3, 4]


def test_flat_bf16_rows_take_the_top_k_path():
    """Rows like a random 1B model's at temperature 0.2 (bf16 logits of std 0.9 over 49,152
    tokens: a nucleus of tens to hundreds of tokens, each near its edge worth ~1e-4 of the mass)
    are served by the top-k path: the float64 masses need a margin of 1e-9, not one as large as
    those tokens' probabilities."""
    from multiplt.generation.sampler import _choose

    gen = torch.Generator().manual_seed(6)
    logits = (torch.randn(48, 49152, generator=gen) * 0.9).to(torch.bfloat16)
    logits[:, :4] += 3.0  # a few likely tokens, as after a real prompt
    seeds = torch.arange(48) * 31
    tokens, full_sort_rows = _choose(logits, seeds, 5, 0.2, 0.95, 1024)
    assert full_sort_rows == 0
    assert torch.equal(tokens, choose_tokens_reference(logits, seeds, 5, 0.2, 0.95))


def test_single_token_rows_skip_the_top_k_path(monkeypatch):
    """Rows whose top token holds nearly all the mass (the tiny model at temperature 0.2) are
    served by the single-token test alone; the others still go through top-k, same tokens."""
    from multiplt.generation import sampler

    calls = []
    real = sampler._top_k_path
    monkeypatch.setattr(sampler, "_top_k_path", lambda x, *a: calls.append(x.shape[0]) or real(x, *a))
    gen = torch.Generator().manual_seed(8)
    logits = torch.randn(48, 4096, generator=gen)
    logits[:, 100] += 8.0  # at temperature 0.2 token 100 holds more than 0.999 of each row
    logits[:5, 100] -= 8.0  # ... except in five rows
    seeds = torch.arange(48) * 13
    got = choose_tokens(logits, seeds, 3, 0.2, 0.95, candidates=32, single=True)
    assert calls == [5]
    assert torch.equal(got, choose_tokens_reference(logits, seeds, 3, 0.2, 0.95))
    assert bool((got[5:] == 100).all())


def test_single_token_test_leaves_rows_near_top_p_to_the_exact_path():
    """A top token whose probability is top_p give or take float32 rounding is not decided by
    the float32 softmax: such rows take the float64 path, with the reference's tokens."""
    import math

    from multiplt.generation.sampler import _single_token_rows

    rows = []
    for p_top in (0.95 - 1e-7, 0.95, 0.95 + 1e-7, 0.95 + 1e-4, 0.9505, 0.96):
        row = torch.full((3000,), float("-inf"))
        row[7], row[11] = 0.0, math.log((1 - p_top) / p_top)  # two tokens: p_top and the rest
        rows.append(row)
    logits = torch.stack(rows)
    seeds = torch.arange(len(rows)) * 101
    certain, tokens = _single_token_rows(logits, 0.95)
    assert certain.tolist() == [False, False, False, False, False, True]
    assert tokens[-1] == 7
    picks = []
    for step in range(20):
        ref = choose_tokens_reference(logits, seeds, step, 1.0, 0.95)
        assert torch.equal(choose_tokens(logits, seeds, step, 1.0, 0.95, single=True), ref)
        picks.append(ref.tolist())
    assert any(p[0] == 11 for p in picks)  # the first row's nucleus holds both tokens


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_a_tie_at_the_nucleus_edge_takes_the_exact_path(dtype, monkeypatch):
    """Two tokens tie at the nucleus edge and only one of them is among the candidates: the top-k
    path cannot know which of the tied tokens it left out, so the row takes the full sort (the
    check `edge > first left out`); with half-precision logits read by the top-k as well."""
    from multiplt.generation import sampler

    monkeypatch.setattr(sampler, "HALF_TOPK_DEVICES", ("cuda", "cpu"))
    logits = torch.full((256, 100), -10.0)
    logits[:, 0], logits[:, 1], logits[:, 2] = 1.5, 1.0, 1.0
    logits = logits.to(dtype)
    seeds = torch.arange(256) * 7919
    ref = choose_tokens_reference(logits, seeds, 3, 1.0, 0.5)
    assert set(ref.tolist()) == {0, 1, 2}  # the nucleus holds the tie's both tokens
    assert torch.equal(choose_tokens(logits, seeds, 3, 1.0, 0.5, candidates=2), ref)
