"""Continuous batching over the slots of static_kv.SlotDecoder (multi-query GPTBigCode models).

Same contract as continuous.sample_continuous (which calls this for the models static_kv
supports): every job gets its tokens from its own seed and its own step (Gumbel-max sampling of
sampler.py), whatever shares the batch, so a resumed run equals an uninterrupted one. As many
rows as `inflight_limit` allows are in flight, one slot each; every iteration gives every live row
one token. Finished rows (EOS or a stop token id, a stop string in their text, or out of tokens)
are looked for every `check_every` iterations, and as soon as a row reaches its token limit: the
ring of the last `check_every` iterations' tokens is copied to the host (non-blocking), and the
host work (EOS and stop token ids, decoding, stop strings) runs in the next iteration while the
GPU computes its decode step; rows found done are yielded at the end of that iteration (the one
token they drew meanwhile is not kept) and their slots are refilled from the waiting requests (shortest prompts first) at the next
iteration: the new rows' first tokens are sampled from their prefill logits in the same iteration
as the others' next tokens. No other host/device traffic per iteration than the sampler's own.
(Queuing the next step before the sampler's wait, and running it again where a row's token
changed, was tried and removed: no faster on an H100, generate_throughput.notes.md.)
"""

from __future__ import annotations

import functools
from typing import Callable, Iterator

import torch

from multiplt.generation.continuous import prefill_chunks
from multiplt.generation.sampler import SamplerOptions, TokenChooser, end_tokens, first_end
from multiplt.generation.static_kv import SlotDecoder
from multiplt.generation.stops import stop_window


def sample_slots(model, jobs, opts: SamplerOptions, rows: int, decode: Callable[[list[int]], str] | None = None,
                 prefill_tokens: int | None = None) -> Iterator[list[tuple[object, list[int]]]]:
    """Sample every job (continuous.Job) with at most `rows` in flight; yields lists of
    (key, new token ids cut before EOS) as rows finish."""
    device = next(model.parameters()).device
    waiting = sorted(jobs, key=lambda j: len(j.prompt))[::-1]  # pop(): shortest first
    rows = max(1, min(rows, len(jobs)))
    # + 1: a finished row is found one iteration late and samples one token more (discarded)
    capacity = max(len(j.prompt) + min(j.max_new_tokens, opts.max_new_tokens) for j in jobs) + 1
    engine = SlotDecoder(model, rows, capacity)
    budget = prefill_tokens or (65536 if device.type == "cuda" else 8192)
    choose = TokenChooser.for_device(device)
    every = max(1, opts.check_every)
    window = stop_window(opts.stop)  # a check decodes the new tokens and this many before them
    ring = torch.zeros((rows, every), dtype=torch.long, device=device)  # last iterations' tokens
    snapshot = _Snapshot(ring)
    pending = None  # (tokens of the ring copied at a check, its iteration, the rows then live)
    seeds = torch.zeros(rows, dtype=torch.int64, device=device)
    steps = torch.zeros(rows, dtype=torch.int64, device=device)
    free = list(range(rows))[::-1]  # pop(): lowest slot first
    slot_job: dict[int, object] = {}  # live slot -> job
    start: dict[int, int] = {}  # iteration at which each live slot got its first token
    toks: dict[int, list[int]] = {}  # tokens already copied to the host per live slot
    it, live_index, order, identity = 0, None, [], False
    deadline = reach = 0  # first iteration some live row has all its tokens; longest row's offset
    with torch.inference_mode():
        while slot_job or waiting:
            new_slots, new_logits = [], []
            if free and waiting:
                taken = [waiting.pop() for _ in range(min(len(free), len(waiting)))]
                for chunk in prefill_chunks(taken, budget):
                    slots = [free.pop() for _ in chunk]
                    new_logits.append(engine.prefill(slots, [j.prompt for j in chunk]))
                    for s, job in zip(slots, chunk):
                        slot_job[s], start[s], toks[s] = job, it, []
                    new_slots += slots
            old = order
            if new_slots:
                order = old + new_slots
                live_index = torch.tensor(order, device=device)
                identity = order == list(range(rows))
                fresh = live_index[len(old):]
                seeds[fresh] = torch.tensor([slot_job[s].seed for s in new_slots], device=device)
                steps[fresh] = 0
                # before the step: a new slot's garbage write goes where its first token will be
                engine.pos[fresh] = torch.tensor([len(slot_job[s].prompt) for s in new_slots], device=device)
                deadline = min(start[s] + _limit(slot_job[s], opts) for s in order)
                reach = max(len(slot_job[s].prompt) - start[s] for s in order)
            parts = []
            if old:  # tokens sampled so far: it - start; the key length must cover prompt + them
                logits = engine.step(engine.key_length(it + reach))
                parts.append(logits if identity and not new_slots else logits[live_index[: len(old)]])
            done = []
            if pending is not None:  # the last check's host work, while the GPU runs this step
                done = _check(pending[0](), pending[1], every, pending[2], slot_job, start, toks, opts, decode,
                              window)
                pending = None
            parts += new_logits
            logits = parts[0] if len(parts) == 1 else torch.cat(parts)
            live_steps = steps if identity else steps[live_index]
            _suppress_eos(logits, live_steps, opts)
            # the counters move on before the tokens are chosen, so that nothing but the chooser's
            # own wait stands between its last kernel and the next step: `steps` out of place
            # (the chooser reads live_steps as they were), positions after this step's writes
            if identity:
                steps = steps + 1
            else:
                steps[live_index] += 1
            if identity and not new_slots:
                engine.pos.add_(1)
            elif old:
                engine.pos[live_index[: len(old)]] += 1
            choose(logits, seeds if identity else seeds[live_index], live_steps, opts.temperature, opts.top_p,
                   publish=functools.partial(_publish, engine.tokens, ring, it % every,
                                             None if identity else live_index))
            it += 1
            if done:  # their tokens of this iteration are not kept
                yield [(slot_job[s].key, toks[s]) for s in done]
                engine.pos[torch.tensor(done, device=device)] = 0  # free slots write at position 0
                for s in done:
                    del slot_job[s], start[s], toks[s]
                    free.append(s)
                free.sort(reverse=True)
                order = [s for s in order if s in slot_job]
                if order:
                    live_index = torch.tensor(order, device=device)
                    identity = order == list(range(rows))
                    deadline = min(start[s] + _limit(slot_job[s], opts) for s in order)
                    reach = max(len(slot_job[s].prompt) - start[s] for s in order)
            if order and (it % every == 0 or it >= deadline):
                pending = (snapshot(), it, list(order))


def _publish(inputs, ring, column: int, live_index, tokens) -> None:
    """The chosen tokens become the next step's inputs and enter the ring (live_index None: every
    slot, in order)."""
    if live_index is None:
        inputs.copy_(tokens)
        ring[:, column].copy_(tokens)
    else:
        inputs[live_index] = tokens
        ring[live_index, column] = tokens


def _limit(job, opts: SamplerOptions) -> int:
    return min(job.max_new_tokens, opts.max_new_tokens)


def _suppress_eos(logits, steps, opts: SamplerOptions) -> None:
    if opts.eos_token_id is None:
        return
    if opts.ignore_eos:
        logits[:, opts.eos_token_id] = float("-inf")
    elif opts.min_new_tokens:
        logits[:, opts.eos_token_id] = logits[:, opts.eos_token_id].masked_fill(
            steps < opts.min_new_tokens, float("-inf"))


class _Snapshot:
    """A copy of the ring on the host, started now (non-blocking on CUDA) and read when called."""

    def __init__(self, ring):
        self.ring = ring
        self.cuda = ring.device.type == "cuda"
        if self.cuda:
            self.host = torch.empty(ring.shape, dtype=ring.dtype, pin_memory=True)
            self.event = torch.cuda.Event()

    def __call__(self):
        if not self.cuda:
            host = self.ring.tolist()
            return lambda: host
        self.host.copy_(self.ring, non_blocking=True)
        self.event.record()

        def read():
            self.event.synchronize()
            return self.host.tolist()
        return read


def _check(host, it: int, every: int, order, slot_job, start, toks, opts: SamplerOptions, decode,
           window: int) -> list[int]:
    """Add the rows' tokens up to iteration `it` (from the ring's copy `host`) to `toks`; return
    the slots that are done, with `toks` of each cut before EOS or the first stop token id. Stop
    strings are looked for in the text of the new tokens and the `window` tokens before them
    (earlier text was checked at earlier checks): each check costs the new tokens, not the whole
    row again."""
    done = []
    ends = end_tokens(opts)
    for s in order:
        count = it - start[s]
        new = count - len(toks[s])  # tokens of the last `new` iterations, oldest first
        row = host[s]
        added = [row[(it - new + j) % every] for j in range(new)]
        toks[s] += added
        finished = count >= _limit(slot_job[s], opts)
        end = first_end(toks[s], ends, len(toks[s]) - new)  # earlier tokens were checked before
        if end != -1:
            toks[s] = toks[s][:end]
            finished = True
        elif not finished and opts.stop and decode is not None:
            text = decode(toks[s][max(0, len(toks[s]) - new - window):])
            finished = any(stop and stop in text for stop in opts.stop)
        if finished:
            done.append(s)
    return done
