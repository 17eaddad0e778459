"""Continuous batching (continuous.py): the same samples as one sequence at a time, greedy output
equal to transformers' `generate`, per-row steps in the keyed noise, the in-flight count."""

import functools

import pytest
import torch
import transformers

from multiplt.generation import continuous, mqa_attention
from multiplt.generation.continuous import Job, inflight_limit, sample_continuous
from multiplt.generation.noise import gumbel_noise_at
from multiplt.generation.sampler import SamplerOptions, sample_batch
from multiplt.generation.seeds import gumbel_noise


def _tiny(multi_query: bool = True):
    config = transformers.GPTBigCodeConfig(n_layer=2, n_embd=64, n_head=4, vocab_size=512,
                                           multi_query=multi_query, n_positions=512)
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    model = transformers.GPTBigCodeForCausalLM(config).eval()
    model.config._attn_implementation = "sdpa"
    return model


def _jobs(count: int = 9, limit: int = 20):
    gen = torch.Generator().manual_seed(3)
    lengths = [3, 30, 9, 1, 17, 12, 40, 5, 22, 8, 2][:count]
    return [Job(i, torch.randint(1, 512, (n,), generator=gen).tolist(), 1000 + i,
                limit - (i % 3) * 4) for i, n in enumerate(lengths)]


def _run(model, jobs, opts, **kw):
    out = {}
    for group in sample_continuous(model, jobs, opts, **kw):
        for key, toks in group:
            assert key not in out
            out[key] = toks
    return out


def _one_at_a_time(model, jobs, opts):
    """The definition: each job alone in a batch of one (sampler.sample_batch)."""
    out = {}
    for job in jobs:
        one = SamplerOptions(**{**opts.__dict__, "max_new_tokens": job.max_new_tokens})
        out[job.key] = sample_batch(model, [job.prompt], [job.seed], one)[0]
    return out


@pytest.mark.parametrize("engine", ["hf", "hf-mqa", "slots", "slots-topk"])
@pytest.mark.parametrize("with_eos", [False, True])
def test_continuous_batching_gives_the_samples_of_one_at_a_time(engine, with_eos, monkeypatch):
    """transformers' forward and cache (with and without our MQA attention) and the slot engine
    (static_kv.py, the default for multi-query GPTBigCode models) against one job at a time.
    slots-topk: the slot engine with the GPU's kind of chooser (top-k path, no single-token test;
    few candidates, so that some rows of a step take the full sort after the tokens were
    published to the engine: they are published again)."""
    from multiplt.generation import sampler, slot_batching

    model = _tiny()
    if engine == "hf-mqa":
        assert mqa_attention.enable(model)
    if engine == "slots-topk":
        fallbacks = []

        class Counting(sampler.TokenChooser):
            def __call__(self, *args, publish=None, **kwargs):
                calls = []
                tokens = super().__call__(*args, publish=lambda t: calls.append(publish(t)), **kwargs)
                fallbacks.append(len(calls) > 1)
                return tokens

        monkeypatch.setattr(slot_batching.TokenChooser, "for_device",
                            classmethod(lambda cls, device: Counting(candidates=16, max_candidates=16)))
    jobs = _jobs()
    opts = SamplerOptions(temperature=1.0, top_p=0.9, max_new_tokens=20, check_every=3)
    if with_eos:  # a token that some sample draws early: those rows end by EOS
        opts.eos_token_id = _one_at_a_time(model, jobs[:1], opts)[0][4]
    expected = _one_at_a_time(model, jobs, opts)
    if with_eos:  # rows finish at different times: the test exercises replacement
        assert any(len(expected[j.key]) < j.max_new_tokens for j in jobs)
    slots = engine.startswith("slots")
    for cap in (1, 2, 3, None):  # None: every row in flight at once
        assert _run(model, jobs, opts, max_batch=cap, slots=slots) == expected, cap
    # prefill in chunks of a few rows, joined to the running cache
    assert _run(model, jobs, opts, max_batch=4, prefill_tokens=40, slots=slots) == expected
    if engine == "slots-topk":
        assert any(fallbacks) and not all(fallbacks)


def test_slot_groups_read_their_own_key_lengths_and_give_the_same_samples(monkeypatch):
    """Slot engine without CUDA graphs, enough rows for grouped decode attention (each group of
    slots reads the key columns up to its own longest row): the samples of one job at a time,
    and the groups do read fewer columns than the longest row of all."""
    from multiplt.generation import static_kv

    model = _tiny()
    gen = torch.Generator().manual_seed(9)
    lengths = [1, 2, 3, 5, 8, 13, 21, 34, 55, 70, 4, 6, 9, 12, 40, 2, 7, 11, 16, 25]
    jobs = [Job(i, torch.randint(1, 512, (n,), generator=gen).tolist(), 500 + i, 14)
            for i, n in enumerate(lengths)]
    opts = SamplerOptions(temperature=1.0, top_p=0.9, max_new_tokens=14, check_every=4)
    seen, real = [], static_kv.SlotDecoder._groups

    def spy(self, length):
        groups = real(self, length)
        seen.append((length, groups))
        return groups

    monkeypatch.setattr(static_kv.SlotDecoder, "_groups", spy)
    assert _run(model, jobs, opts) == _one_at_a_time(model, jobs, opts)
    assert any(g and min(end for *_, end in g) < length for length, g in seen)
    # one decode step's logits, grouped and over the longest row's columns for every slot
    engine = static_kv.SlotDecoder(model, len(jobs), 90)
    with torch.inference_mode():
        engine.prefill(list(range(len(jobs))), [j.prompt for j in jobs])
        engine.pos.copy_(torch.tensor([len(j.prompt) for j in jobs]))
        engine.tokens.random_(1, 512, generator=gen)
        grouped = engine.step(71).clone()
        monkeypatch.setattr(mqa_attention, "GROUPS", len(jobs))  # fewer than 2 x GROUPS slots: one group
        whole = engine.step(71)
    assert seen[-2][1] is not None and seen[-1][1] is None
    assert torch.allclose(grouped, whole, atol=1e-5, rtol=0)


def test_slot_prefill_runs_a_repeated_prompt_once(monkeypatch):
    """A problem's samples share their prompt: the slot engine prefills it once and gives every
    sample its keys, values and logits; the samples are still those of one job at a time."""
    model = _tiny()
    gen = torch.Generator().manual_seed(11)
    prompts = [torch.randint(1, 512, (n,), generator=gen).tolist() for n in (5, 17, 9)]
    jobs = [Job((p, i), prompts[p], 900 + 10 * p + i, 12) for p in range(3) for i in range(4)]
    opts = SamplerOptions(temperature=1.0, top_p=0.9, max_new_tokens=12, check_every=4)
    rows, real = [], model.transformer.wte.forward

    def spy(ids):
        if ids.dim() == 2:  # a prefill (decode steps embed one token per slot)
            rows.append(ids.shape[0])
        return real(ids)

    monkeypatch.setattr(model.transformer.wte, "forward", spy)
    out = _run(model, jobs, opts)
    assert sum(rows) == 3
    monkeypatch.setattr(model.transformer.wte, "forward", real)
    assert out == _one_at_a_time(model, jobs, opts)
    assert len({tuple(out[(0, i)]) for i in range(4)}) > 1  # own seeds: different samples


def test_rows_are_replaced_as_they_finish(monkeypatch):
    """transformers' path: with a cap of 2, a finished row's place is taken by a waiting request
    at once: the number of rows in each forward never drops below 2 while requests wait."""
    model = _tiny()
    jobs = _jobs(6)
    widths, real = [], model.forward

    @functools.wraps(real)  # keeps forward's signature: the sampler picks its cache argument from it
    def spy(*args, **kw):
        widths.append((kw["input_ids"].shape[0], kw["input_ids"].shape[1]))
        return real(*args, **kw)

    monkeypatch.setattr(model, "forward", spy)
    opts = SamplerOptions(temperature=1.0, top_p=0.9, max_new_tokens=20, eos_token_id=5,
                          check_every=2)
    out = _run(model, jobs, opts, max_batch=2, slots=False)
    assert sorted(out) == list(range(6))
    decode_rows = [b for b, t in widths if t == 1]
    prefills = [w for w in widths if w[1] > 1 or w[0] != decode_rows[0]]
    assert max(decode_rows) == 2 and len(prefills) >= 3  # requests admitted one wave after another
    # while any request waited, every decode step had 2 rows
    assert decode_rows[: len(decode_rows) // 2].count(1) == 0


def test_slots_are_refilled_as_rows_finish(monkeypatch):
    """Slot engine: with 2 slots, a finished row's slot is prefilled with a waiting request at the
    next iteration, so every iteration samples 2 rows while requests wait; the default path of
    sample_continuous for this model is the slot engine."""
    from multiplt.generation import sampler, slot_batching, static_kv

    assert static_kv.supported(_tiny()) and not static_kv.supported(_tiny(multi_query=False))
    model = _tiny()
    jobs = _jobs(6)
    sampled, prefills, real = [], [], static_kv.SlotDecoder.prefill
    monkeypatch.setattr(static_kv.SlotDecoder, "prefill",
                        lambda self, slots, prompts: prefills.append(list(slots)) or real(self, slots, prompts))

    class Spy(sampler.TokenChooser):
        def __call__(self, logits, *args, **kwargs):
            sampled.append(logits.shape[0])
            return super().__call__(logits, *args, **kwargs)

    monkeypatch.setattr(slot_batching, "TokenChooser", Spy)
    opts = SamplerOptions(temperature=1.0, top_p=0.9, max_new_tokens=20, eos_token_id=5, check_every=2)
    out = _run(model, jobs, opts, max_batch=2)
    assert sorted(out) == list(range(6)) and all(len(t) <= 20 for t in out.values())
    assert prefills[0] == [0, 1] and len(prefills) >= 3 and all(s in ([0], [1], [0, 1]) for s in prefills)
    assert sum(len(p) for p in prefills) == 6  # each request prefilled once, into a free slot
    assert max(sampled) == 2 and sampled[: len(sampled) // 2].count(1) == 0


def test_greedy_equals_transformers_generate():
    model = _tiny()
    eos = 7
    jobs = _jobs(8, limit=24)
    opts = SamplerOptions(temperature=0.0, max_new_tokens=24, eos_token_id=eos, pad_token_id=eos)
    ours = _run(model, jobs, opts)
    for job in jobs:
        ids = torch.tensor([job.prompt])
        with torch.inference_mode():
            ref = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=job.max_new_tokens, eos_token_id=eos, pad_token_id=eos)
        new = ref[0, len(job.prompt):].tolist()
        if eos in new:
            new = new[: new.index(eos)]
        assert ours[job.key] == new, job.key


def test_greedy_equals_transformers_generate_on_the_tiny_model(tiny_model):
    """The project's tiny local model with its tokenizer, through the transformers backend."""
    from multiplt.generation.base import Request, Sampling
    from multiplt.generation.hf_backend import TransformersBackend

    backend = TransformersBackend(tiny_model, device="cpu")
    prompts = {"a": "#lang racket\n(define (add x y)\n", "b": "(define (f xs)\n  ;; double\n",
               "c": "#lang racket\n\n;; Return the sum of a list\n(define (sum-list xs)\n"}
    requests = [Request(name, text, 0) for name, text in prompts.items()]
    sampling = Sampling(temperature=0.0, top_p=1.0, max_new_tokens=40, stop=(), seed=0)
    ours = {r.problem: text for group in backend.generate(requests, sampling) for r, text in group}
    for name, text in prompts.items():
        ids = backend.tokenizer(text.strip(), add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            ref = backend.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                         do_sample=False, max_new_tokens=40,
                                         eos_token_id=backend.eos_token_id,
                                         pad_token_id=backend.pad_token_id)
        new = ref[0, ids.shape[1]:].tolist()
        if backend.eos_token_id in new:
            new = new[: new.index(backend.eos_token_id)]
        assert ours[name] == backend.tokenizer.decode(new, skip_special_tokens=False), name


def test_noise_with_per_row_steps_equals_each_rows_own_step():
    seeds = torch.tensor([1, 99, 12345, 2**31 - 1])
    steps = torch.tensor([0, 7, 300, 41])
    ids = torch.randint(0, 1000, (4, 16), generator=torch.Generator().manual_seed(0))
    per_row = gumbel_noise_at(seeds, steps, ids)
    full = gumbel_noise(seeds, steps, 1000)
    for r in range(4):
        one = gumbel_noise_at(seeds[r: r + 1], int(steps[r]), ids[r: r + 1])
        assert torch.equal(per_row[r], one[0])
        assert torch.equal(full[r], gumbel_noise(seeds[r: r + 1], int(steps[r]), 1000)[0])
        assert torch.equal(full[r, ids[r]], per_row[r])


def test_choose_tokens_with_per_row_steps_equals_each_row_alone():
    """Per-row steps through both paths of choose_tokens (some rows need the full sort)."""
    from multiplt.generation.sampler import choose_tokens, choose_tokens_reference

    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(12, 700, generator=gen) * torch.tensor([0.1, 8.0] * 6)[:, None]
    seeds, steps = torch.arange(12) * 7919, torch.arange(12) * 13
    got = choose_tokens(logits, seeds, steps, 0.7, 0.9, candidates=16)
    for r in range(12):
        alone = choose_tokens_reference(logits[r: r + 1], seeds[r: r + 1], int(steps[r]), 0.7, 0.9)
        assert int(got[r]) == int(alone[0])


def test_inflight_limit_follows_free_memory_and_cap(monkeypatch):
    model = _tiny()
    per_token = continuous.kv_bytes_per_token(model.config, 4)
    assert per_token == 2 * 2 * 1 * 16 * 4  # layers x (K, V) x one KV head x head_dim x fp32
    per_row = 2 * per_token * (100 + 28) + 8 * 4 * 512
    monkeypatch.setattr(continuous, "_free_memory", lambda device: 1000 * per_row)
    assert inflight_limit(model, 100, 28, fraction=0.5) == 500
    assert inflight_limit(model, 100, 28, max_batch=16, fraction=0.5) == 16
    monkeypatch.setattr(continuous, "_free_memory", lambda device: 0)
    assert inflight_limit(model, 100, 28) == 1


def test_stop_strings_end_rows_with_the_text_of_one_at_a_time():
    from multiplt.generation.stops import cut_at_stop

    model = _tiny()
    jobs = _jobs()

    def decode(ids):
        return "".join(chr(97 + t % 26) for t in ids)

    base = SamplerOptions(temperature=1.0, top_p=0.9, max_new_tokens=20, check_every=3)
    first = _one_at_a_time(model, jobs[:2], base)
    stops = (decode(first[0][5:6]), decode(first[1][7:8]))  # letters some rows draw mid-way
    opts = SamplerOptions(**{**base.__dict__, "stop": stops})
    expected = {k: cut_at_stop(decode(t), stops) for k, t in _one_at_a_time(model, jobs, opts).items()}
    assert any(len(t) < 12 for t in expected.values())  # some rows stopped early
    for cap in (2, None):
        raw = _run(model, jobs, opts, max_batch=cap, decode=decode)
        assert any(len(raw[j.key]) < j.max_new_tokens for j in jobs)  # ended by a stop string
        assert {k: cut_at_stop(decode(t), stops) for k, t in raw.items()} == expected


def test_stop_strings_across_checks_end_rows_at_the_next_check():
    """A stop string whose tokens straddle two checks is found at the first check after its last
    token (the check decodes the new tokens and a window before them, not the whole row)."""
    from multiplt.generation.stops import stop_index

    model = _tiny()
    jobs = _jobs()

    def decode(ids):
        return "".join(chr(97 + t % 26) for t in ids)

    every = 3
    base = SamplerOptions(temperature=1.0, top_p=0.9, max_new_tokens=20, check_every=every)
    alone = _one_at_a_time(model, jobs, base)
    # 4-letter stops that rows draw across the boundary of the first and second checks
    stops = tuple(decode(alone[k][1:5]) for k in (0, 4, 7))
    raw = _run(model, jobs, SamplerOptions(**{**base.__dict__, "stop": stops}), decode=decode)
    ended = 0
    for job in jobs:
        text = decode(alone[job.key])
        at = stop_index(text, stops)
        if at == -1:
            continue
        last = at + min(len(s) for s in stops if text.startswith(s, at)) - 1  # its last token
        assert len(raw[job.key]) <= last + 1 + every, (job.key, at, len(raw[job.key]))
        ended += 1
    assert ended >= 3


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (the CUDA-graph decode steps)")
def test_slot_engine_with_cuda_graphs_gives_the_samples_of_one_at_a_time():
    """On CUDA the slot engine replays captured decode steps; in fp32 its samples are those of
    transformers' forward one job at a time (rows enter, finish by EOS and are replaced)."""
    from multiplt.generation import static_kv

    model = _tiny().cuda()
    jobs = _jobs()
    opts = SamplerOptions(temperature=1.0, top_p=0.9, max_new_tokens=20, check_every=3)
    opts.eos_token_id = _one_at_a_time(model, jobs[:1], opts)[0][4]
    expected = _one_at_a_time(model, jobs, opts)
    captured = []
    real = static_kv.SlotDecoder.step
    for cap in (2, None):
        def spy(self, length):
            out = real(self, length)
            captured.append(length in self._captured)
            return out
        static_kv.SlotDecoder.step = spy
        try:
            assert _run(model, jobs, opts, max_batch=cap) == expected, cap
        finally:
            static_kv.SlotDecoder.step = real
    assert captured and all(captured)


def test_a_prompt_longer_than_the_context_is_cut_from_the_left(tiny_model, caplog):
    """Its end (where the completion continues) is what the model sees: the completion equals
    the one of the prompt's last tokens given directly, and the cut is logged."""
    from multiplt.generation.base import Request, Sampling
    from multiplt.generation.hf_backend import TransformersBackend

    backend = TransformersBackend(tiny_model, device="cpu")
    context = backend.max_positions
    tail = "\n(define (sum-list xs)\n"
    long = "".join(f";; line {i} of a long comment\n" for i in range(context)) + tail
    ids = backend.tokenizer(long.strip(), add_special_tokens=False)["input_ids"]
    assert len(ids) > context
    sampling = Sampling(temperature=0.0, top_p=1.0, max_new_tokens=16, stop=(), seed=0)
    with caplog.at_level("WARNING", logger="multiplt.generation"):
        [[(_, cut)]] = list(backend.generate([Request("long", long, 0)], sampling))
    assert f"its first {len(ids) - (context - 16)} tokens are cut" in caplog.text
    kept = backend.tokenizer.decode(ids[len(ids) - (context - 16):])
    reference = TransformersBackend(tiny_model, device="cpu")
    reference.tokenizer = backend.tokenizer
    [[(_, direct)]] = list(reference.generate([Request("kept", kept, 0)], sampling))
    assert cut == direct


def test_prefill_chunks_pack_consecutive_jobs_within_the_padded_token_budget():
    """continuous.prefill_chunks, the one chunking of both prefills (sample_continuous's and
    slot_batching.sample_slots's): consecutive jobs, each chunk's longest prompt times its rows
    at most `budget`, a prompt longer than the budget a chunk of its own."""
    from multiplt.generation import slot_batching

    jobs = [Job(i, [1] * n, 0, 4) for i, n in enumerate([2, 3, 3, 5, 12, 4])]
    chunks = [[job.key for job in chunk] for chunk in continuous.prefill_chunks(jobs, 10)]
    assert chunks == [[0, 1, 2], [3], [4], [5]]
    assert [[j.key for j in c] for c in continuous.prefill_chunks(jobs, 100)] == [[0, 1, 2, 3, 4, 5]]
    assert list(continuous.prefill_chunks([], 10)) == []
    assert slot_batching.prefill_chunks is continuous.prefill_chunks
