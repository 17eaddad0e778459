"""Continuous batching for our sampler: as many sequences in flight as memory allows, and a row
that finishes is replaced by a waiting request instead of idling until its batch ends.

Per iteration every live row gets one token (the same Gumbel-max sampling as sampler.py, keyed by
each row's own seed and own step, so a sample does not depend on what shares the batch). Every
`check_every` iterations, and whenever a row reaches its token limit, finished rows (EOS or one of
the options' stop_token_ids, a stop string in their text, or out of tokens) are yielded and leave the KV cache; then waiting requests
(shortest prompts first, so rows that share a batch have similar lengths) are prefilled in chunks
and joined to the running cache (kv_cache.join: right-aligned, left padding hidden by the mask).
That is the path of models in general; multi-query GPTBigCode models (static_kv.supported) go
to slot_batching.sample_slots instead: a static KV cache with one slot per row, same contract.

How many rows are in flight: `inflight_limit` from the free memory (GPU) or available memory
(CPU) and the KV cache size of one row, capped by the caller's optional `max_batch`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterator

from multiplt.generation import kv_cache
from multiplt.generation.sampler import (SamplerOptions, TokenChooser, _cache_kwarg,
                                         _decode_attention, _out_cache, end_tokens, first_end)


@dataclasses.dataclass
class Job:
    """One sequence to sample: `key` comes back with its tokens; `max_new_tokens` may be lower
    than the options' limit (a long prompt near the model's context)."""

    key: object
    prompt: list[int]
    seed: int
    max_new_tokens: int


def kv_bytes_per_token(config, element_size: int) -> int:
    """Bytes of KV cache one token of one row takes (all layers, keys and values)."""
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer")
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_head")
    hidden = getattr(config, "hidden_size", None) or getattr(config, "n_embd")
    kv_heads = getattr(config, "num_key_value_heads", None)
    if kv_heads is None:
        kv_heads = 1 if getattr(config, "multi_query", False) else heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    return layers * 2 * kv_heads * head_dim * element_size


def supports(model) -> bool:
    """Whether the model's config tells the KV cache size (needed to size the in-flight count);
    other models (test doubles) are sampled in fixed batches by hf_backend."""
    try:
        return kv_bytes_per_token(model.config, 2) > 0 and model.config.vocab_size > 0
    except (AttributeError, TypeError):
        return False


def _free_memory(device) -> int:
    if device.type == "cuda":
        import torch

        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


def inflight_limit(model, longest_prompt: int, max_new_tokens: int, max_batch: int | None = None,
                   fraction: float = 0.5) -> int:
    """Rows that fit in `fraction` of the free memory: each row's KV cache at full length, twice
    (joining copies the cache), plus its logits and the sampler's temporaries over the vocabulary."""
    param = next(model.parameters())
    per_row = 2 * kv_bytes_per_token(model.config, param.element_size()) * (longest_prompt + max_new_tokens)
    per_row += 8 * 4 * model.config.vocab_size
    rows = max(1, int(_free_memory(param.device) * fraction) // per_row)
    return min(rows, max_batch) if max_batch else rows


def prefill_chunks(jobs: list[Job], budget: int) -> Iterator[list[Job]]:
    """Consecutive jobs (already sorted by prompt length) in chunks of at most `budget` padded
    tokens (a job whose prompt alone is longer is a chunk of its own); the prefills of
    sample_continuous and of slot_batching.sample_slots."""
    chunk: list[Job] = []
    for job in jobs:
        width = max([len(job.prompt)] + [len(j.prompt) for j in chunk])
        if chunk and width * (len(chunk) + 1) > budget:
            yield chunk
            chunk = []
        chunk.append(job)
    if chunk:
        yield chunk


def sample_continuous(model, jobs: list[Job], opts: SamplerOptions, max_batch: int | None = None,
                      decode: Callable[[list[int]], str] | None = None,
                      prefill_tokens: int | None = None, slots: bool | None = None
                      ) -> Iterator[list[tuple[object, list[int]]]]:
    """Sample every job; yields lists of (key, new token ids cut before EOS or the first of
    `opts.stop_token_ids`) as rows finish.
    `opts.max_new_tokens` bounds every job's own limit; `max_batch` caps the rows in flight.
    Multi-query GPTBigCode models run on static_kv's slot engine (slot_batching.py; `slots`
    None = whenever supported); other models on transformers' forward and cache (below)."""
    import torch

    if not jobs:
        return
    from multiplt.generation import static_kv

    if slots or (slots is None and static_kv.supported(model)):
        from multiplt.generation.slot_batching import sample_slots

        rows = inflight_limit(model, max(len(j.prompt) for j in jobs), opts.max_new_tokens, max_batch)
        yield from sample_slots(model, jobs, opts, rows, decode=decode, prefill_tokens=prefill_tokens)
        return
    device = next(model.parameters()).device
    # pop() from the end: shortest prompt first, equal lengths in the given order (the driver
    # writes a problem's samples in index order, so sample 0 should come first)
    waiting = sorted(jobs, key=lambda j: len(j.prompt))[::-1]
    cap = inflight_limit(model, max(len(j.prompt) for j in jobs), opts.max_new_tokens, max_batch)
    budget = prefill_tokens or (65536 if device.type == "cuda" else 8192)
    kw = _cache_kwarg(model)
    choose = TokenChooser.for_device(device)
    width = opts.max_new_tokens
    live: list[Job] = []
    deadline: list[int] = []  # iteration at which each live row has all its tokens (host side)
    state = None  # dict of the live rows' tensors
    it = 0
    with torch.inference_mode(), _decode_attention(device):
        while live or waiting:
            if len(live) < cap and waiting:  # admit waiting requests into the free rows
                new = [waiting.pop() for _ in range(min(cap - len(live), len(waiting)))]
                for chunk in prefill_chunks(new, budget):
                    state = _admit(model, state, chunk, opts, width, device)
                    live += chunk
                    deadline += [it + j.max_new_tokens for j in chunk]
            # one token for every live row
            logits, steps = state["logits"], state["steps"]
            if opts.eos_token_id is not None:
                if opts.ignore_eos:
                    logits[:, opts.eos_token_id] = float("-inf")
                elif opts.min_new_tokens:
                    logits[:, opts.eos_token_id] = logits[:, opts.eos_token_id].masked_fill(
                        steps < opts.min_new_tokens, float("-inf"))
            tokens = choose(logits, state["seeds"], steps, opts.temperature, opts.top_p)
            state["buf"].scatter_(1, steps[:, None], tokens[:, None])
            state["steps"] = steps + 1
            it += 1
            if it % opts.check_every == 0 or it >= min(deadline):
                ends = [it >= d for d in deadline]
                done, finished = _finished(state["buf"], state["steps"], ends, live, opts, decode)
                if finished:
                    yield finished
                if any(done):
                    rows = [i for i, d in enumerate(done) if not d]
                    live, deadline = [live[i] for i in rows], [deadline[i] for i in rows]
                    if not live:
                        state = None
                        continue
                    keep = torch.tensor(rows, device=device)
                    state = {k: v[keep] for k, v in state.items() if k != "cache"} | {"cache": state["cache"]}
                    tokens = tokens[keep]
                    drop = int(state["mask"].any(0).to(torch.int8).argmax())  # columns no live row uses
                    kv_cache.select(state["cache"], keep, drop, width)
                    state["mask"] = state["mask"][:, drop:]
            mask = state["mask"]
            mask = state["mask"] = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
            out = model(input_ids=tokens[:, None], attention_mask=mask,
                        position_ids=state["pos"][:, None], use_cache=True, **{kw: state["cache"]})
            state["cache"], state["logits"] = _out_cache(out), out.logits[:, -1, :]
            state["pos"] = state["pos"] + 1


def _admit(model, state, chunk: list[Job], opts: SamplerOptions, width: int, device) -> dict:
    """Prefill `chunk` (left-padded, explicit positions, last logits only) and join it to the
    live rows' state (None when there are none)."""
    import torch

    n, longest = len(chunk), max(len(j.prompt) for j in chunk)
    ids = torch.full((n, longest), opts.pad_token_id, dtype=torch.long)
    mask = torch.zeros((n, longest), dtype=torch.long)
    for row, job in enumerate(chunk):
        ids[row, longest - len(job.prompt):] = torch.tensor(job.prompt, dtype=torch.long)
        mask[row, longest - len(job.prompt):] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                logits_to_keep=1)
    cache = _out_cache(out)
    if not kv_cache.supported(cache):
        raise RuntimeError(f"continuous batching needs a DynamicCache of full-attention layers, "
                           f"got {type(cache).__name__}")
    new = {"cache": cache, "mask": mask, "pos": positions[:, -1] + 1, "logits": out.logits[:, -1, :],
           "seeds": torch.tensor([j.seed for j in chunk], dtype=torch.int64, device=device),
           "steps": torch.zeros(n, dtype=torch.int64, device=device),
           "buf": torch.full((n, width), opts.pad_token_id, dtype=torch.long, device=device)}
    if state is None:
        kv_cache.select(cache, torch.arange(n, device=device), 0, width)
        return new
    kv_cache.join(state["cache"], cache, width)
    grow = new["mask"].shape[1] - state["mask"].shape[1]  # right-align the masks like the cache
    if grow > 0:
        state["mask"] = torch.cat([state["mask"].new_zeros((state["mask"].shape[0], grow)), state["mask"]], 1)
    elif grow < 0:
        new["mask"] = torch.cat([new["mask"].new_zeros((n, -grow)), new["mask"]], 1)
    return {k: (state[k] if k == "cache" else torch.cat([state[k], new[k]])) for k in state}


def _finished(buf, steps, ends: list[bool], live: list[Job], opts: SamplerOptions, decode):
    """Which live rows are done (EOS or a stop token id, a stop string in their text, or
    `ends`: out of tokens), and their (key, tokens cut before the EOS or stop token id)."""
    counts = steps.tolist()
    host = buf[:, : max(counts)].tolist()
    done, finished = [False] * len(live), []
    end_ids = end_tokens(opts)
    for i, (toks, count) in enumerate(zip(host, counts)):
        toks = toks[:count]
        end = first_end(toks, end_ids)
        if end != -1:
            toks = toks[:end]
            done[i] = True
        elif ends[i]:
            done[i] = True
        elif opts.stop and decode is not None and _has_stop(decode(toks), opts.stop):
            done[i] = True
        if done[i]:
            finished.append((live[i].key, toks))
    return done, finished


def _has_stop(text: str, stops) -> bool:
    return any(s and s in text for s in stops)
