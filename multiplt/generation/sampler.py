"""Our batched sampler for decoder-only transformers models (used by hf_backend.py and the GPU
benchmark).

Why not `model.generate`: we want (1) each sample's randomness keyed by its own seed so batching
cannot change it (seeds.py), (2) rows that finished (EOS, a stop token id or a stop string)
dropped from the batch and KV cache as the batch shrinks, so long batches do not keep paying for
finished rows, and (3) few host-device syncs: EOS and stop strings are checked every
`check_every` steps only.

The loop, per batch of prompts (already grouped by length, so padding is small):
  prefill:  left-padded prompts, explicit position ids, logits of the last position only
  decode:   one token per row per step; top-p filter then Gumbel-max with per-row keyed noise
  check:    every `check_every` steps, rows with EOS (or one of `stop_token_ids`) or a stop string
            in their text are done
  compact:  finished rows leave the cache, masks and buffers (cache.batch_select_indices)
Speed without changing a token: the KV cache is preallocated after the prefill (kv_cache.py),
decode steps on CUDA avoid cuDNN attention (a new execution plan per key length), the noise is
computed in int32 (noise.py) and top-p uses a top-k shortcut where it provably agrees with the
full sort, and on the CPU a single-token test before it (choose_tokens vs
choose_tokens_reference). On CUDA with decode_kernels: the top-k reads the half-precision logits
(HALF_TOPK), without a float32 copy over the temperature (RAW_LOGITS), the float64 normalizer
is one kernel (exp_sum64) and everything after the top-k is another (nucleus, NUCLEUS_KERNEL).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Callable

from multiplt.generation import decode_kernels, kv_cache
from multiplt.generation.noise import gumbel_noise32, gumbel_noise_at
from multiplt.generation.seeds import gumbel_noise
from multiplt.generation.stops import stop_index


@dataclasses.dataclass
class SamplerOptions:
    temperature: float = 0.2
    top_p: float = 0.95
    max_new_tokens: int = 512
    eos_token_id: int | None = None
    pad_token_id: int = 0
    stop: tuple[str, ...] = ()
    check_every: int = 16
    ignore_eos: bool = False  # benchmarks: always generate max_new_tokens
    min_new_tokens: int = 0
    # tokens that end a row as EOS does (found at the same checks; the row's tokens are cut
    # before the first): hf_backend gives the tokenizer's special tokens, where it cuts the
    # completion anyway. Only the end of a row: which token is chosen does not change.
    stop_token_ids: frozenset[int] = frozenset()


def end_tokens(opts: SamplerOptions) -> frozenset[int]:
    """The tokens that end a row: EOS and `stop_token_ids`; none under `ignore_eos`."""
    if opts.ignore_eos:
        return frozenset()
    ends = frozenset(opts.stop_token_ids)
    return ends | {opts.eos_token_id} if opts.eos_token_id is not None else ends


def first_end(toks: list[int], ends: frozenset[int], start: int = 0) -> int:
    """Index of the first of `toks[start:]` in `ends`, -1 when none is (a scan at C speed
    first: most rows have none)."""
    if ends.isdisjoint(toks[start:] if start else toks):
        return -1
    return next(i for i in range(start, len(toks)) if toks[i] in ends)


TOP_K_CANDIDATES = 256  # top-p fast path: the nucleus is looked for among this many tokens
# A row takes the full sort when a candidate's mass before it comes this close to top_p. The
# masses are float64 (exp, sums and division): each is within about V * 2**-53 of the exact value
# (5.5e-12 at V = 49,152), so two computations in different orders (the sort's cumsum, the top-k
# path's) cannot fall on different sides of top_p unless they are within 1e-9 of it (holds up to
# vocabularies of about 4 million tokens).
_MARGIN = 1e-9


def _normalizer(x, top):
    """float64 sum over the vocabulary of exp(x - top), [B, 1] (top: each row's largest x)."""
    import torch

    if x.device.type != "cpu":
        if decode_kernels.available(x.device):  # one pass over x, float64 inside the kernel
            return decode_kernels.exp_sum64(x, top)
        return x.double().sub_(top).exp_().sum(-1, keepdim=True)
    # CPU: a few rows at a time. A [B, V] float64 temporary of megabytes is freed back to the
    # OS by glibc after each step and faulted in again at the next (measured: 4.4 ms against
    # 1.2 ms for 120 x 4,096); blocks of at most 512 KiB stay in the heap.
    rows = max(1, 65536 // max(1, x.shape[-1]))
    return torch.cat([c.double().sub_(t).exp_().sum(-1, keepdim=True)
                      for c, t in zip(x.split(rows), top.split(rows))])


def _mass_before(sorted_x, top, z):
    """float64 probability mass of the tokens ranked before each of `sorted_x` (each row's
    largest logits, descending), as a fraction of the row's total `z`: 0 for the first."""
    import torch

    cum = (sorted_x.double() - top).exp_().cumsum_(-1)
    return torch.cat([cum.new_zeros(cum.shape[0], 1), cum[:, :-1]], dim=-1) / z


def _nucleus_edge(sorted_x, before, top_p: float):
    """The smallest logit kept by top-p, [B, 1]: the value at the last sorted position whose mass
    before it (`before`, from _mass_before) is at most top_p. Every token at least this large is
    kept, ties included, so the nucleus does not depend on how a sort orders equal logits."""
    kept = (before <= top_p).sum(-1, keepdim=True)  # >= 1: nothing comes before the first
    return sorted_x.gather(1, kept - 1)


def choose_tokens_reference(logits, row_seeds, step: int, temperature: float, top_p: float):
    """The definition of our sampling (full sort for top-p, full-vocabulary noise); the fast
    `choose_tokens` returns the same tokens.

    Top-p keeps every token whose logit is at least that of the last token (in descending order)
    whose preceding tokens' probability mass is at most top_p; the masses are float64. Then
    Gumbel-max with per-row keyed noise (seeds.py) picks one kept token."""
    logits = logits.float()
    if temperature <= 0:
        return logits.argmax(-1)
    x = logits / temperature
    if top_p < 1.0:
        x = _top_p_filter(x, top_p)
    return (x + gumbel_noise(row_seeds, step, x.shape[-1])).argmax(-1)


def _top_p_filter(x, top_p: float):
    """x with the tokens outside the nucleus set to -inf (one full sort per row)."""
    sorted_x = x.sort(-1, descending=True).values
    top = sorted_x[:, :1].double()
    edge = _nucleus_edge(sorted_x, _mass_before(sorted_x, top, _normalizer(x, top)), top_p)
    return x.masked_fill(x < edge, float("-inf"))


def _sort_path(x, row_seeds, step, top_p: float):
    """choose_tokens_reference on logits already divided by the temperature (int32 noise,
    which has the same values)."""
    if top_p < 1.0:
        x = _top_p_filter(x, top_p)
    return (x + gumbel_noise32(row_seeds, step, x.shape[-1])).argmax(-1)


def choose_tokens(logits, row_seeds, step: int, temperature: float, top_p: float,
                  candidates: int = TOP_K_CANDIDATES, single: bool = False):
    """Next token per row: greedy at temperature 0, else top-p filtered Gumbel-max sampling.

    Same tokens as choose_tokens_reference, cheaper when the nucleus is small: it is found among
    the `candidates` largest logits (topk, no full sort) and the noise is computed for those
    tokens only. A row takes the exact full-sort path when its candidates do not hold the whole
    nucleus (the first token left out still within it, or tied with its smallest logit), or when
    the mass before some candidate comes within _MARGIN of top_p (float rounding could decide
    differently there). With `single`, rows whose top token alone certainly holds more than
    top_p of the mass take that token first (_single_token_rows; no top-k, no noise)."""
    return _choose(logits, row_seeds, step, temperature, top_p, candidates, single)[0]


_ARANGE: dict = {}  # (vocabulary, device) -> 0..V-1 as float32, for _single_token_rows


def _single_token_rows(x, top_p: float):
    """(certain [B] bool, tokens [B]): the rows whose largest logit alone holds more than top_p of
    the probability, and that token.

    For such a row the reference's mass before its second sorted token, 1 / z, exceeds top_p, so
    its nucleus is the tokens tied with the largest logit; and a token with more than half of the
    mass has no tie. So Gumbel-max picks that one token whatever the noise. The test runs on a
    float32 softmax (about a third of the cost of the top-k path on the CPU): its top probability
    is within about V * 2**-24 of the exact one (the sum of V terms, each exp within a few ulp),
    and a row counts only when it clears top_p by four times that. The token's index comes from
    the rounded probabilities (1 for the top token, 0 for every other one, whose mass is below
    one half) times 0..V-1: argmax over the vocabulary costs more than the softmax here."""
    import torch

    vocab = x.shape[-1]
    p = torch.softmax(x, -1)
    margin = 4 * vocab * 2.0 ** -24
    certain = p.amax(-1) > top_p + margin
    key = (vocab, x.device)
    if key not in _ARANGE:
        with torch.inference_mode(False):  # a plain tensor: usable in and out of inference mode
            _ARANGE[key] = torch.arange(vocab, dtype=torch.float32, device=x.device)
    tokens = (p.round_() @ _ARANGE[key]).long()
    return certain, tokens


def _choose(logits, row_seeds, step, temperature: float, top_p: float, candidates: int,
            single: bool = False, publish=None):
    """choose_tokens, plus how many rows took the full-sort path; `publish` as _settle's (called
    only on the paths that sync with the host)."""
    if temperature <= 0:
        return logits.float().argmax(-1), 0
    if not single and _raw_path(logits, temperature, top_p):
        return _top_k_path_raw(logits, temperature, row_seeds, step, top_p, candidates, publish)
    raw, logits = logits, logits.float()
    x = logits / temperature
    # half-precision logits rank the tokens as x does (x = float(logit) / T is non-decreasing in
    # the logit; what follows depends on values only, never on the order of equal ones), so on
    # the GPU the top-k can read them: half the bytes, a radix select over 16-bit keys. (On the
    # CPU torch's top-k over half values is slower than over float32.)
    order = (raw if HALF_TOPK and raw.device.type in HALF_TOPK_DEVICES
             and str(raw.dtype) in decode_kernels.HALF_DTYPES else None)
    if not (single and 0.5 <= top_p < 1.0):
        return _top_k_path(x, row_seeds, step, top_p, candidates, order, publish)
    certain, tokens = _single_token_rows(x, top_p)
    if bool(certain.all()):  # one host sync per step
        return tokens, 0
    rows = (~certain).nonzero().squeeze(-1)
    step_rows = step if isinstance(step, int) else step[rows]
    tokens[rows], fallback = _top_k_path(x[rows], row_seeds[rows], step_rows, top_p, candidates,
                                         None if order is None else order[rows])
    return tokens, fallback


# _choose: the top-k over half-precision logits as they come (H100, 640 x 49,152: 0.36 ms
# against 0.65 ms over the float32 copy; bench/profile_slots.py times both).
HALF_TOPK = True
HALF_TOPK_DEVICES = ("cuda",)  # the tests add "cpu" to check the tokens
# _top_k_path after its top-k: decode_kernels.nucleus where the kernels serve (the mass before
# each candidate, the nucleus edge, the exactness test, the candidates' noise and the Gumbel-max
# in one launch per row), for up to this many candidates (a row's k + 1 values in one tile)
NUCLEUS_KERNEL = True
NUCLEUS_KERNEL_MAX = 8192
# with both: _top_k_path_raw (no float32 copy of the logits over the temperature) where it serves
RAW_LOGITS = True
# _top_k_path_raw without the candidates' gather, float copy and division: the normalizer and
# nucleus kernels read the logits at the top-k's indices (H200, 640 x 49,152: the chooser 0.500
# against 0.522 ms, the same tokens; generate_throughput.notes.md, twelfth session)
FUSED_GATHER = True


def _raw_path(logits, temperature: float, top_p: float) -> bool:
    """Whether _top_k_path_raw serves: the GPU with decode_kernels (half-precision top-k and the
    nucleus kernel on), top-p below 1, and torch dividing by this temperature as a product with
    its reciprocal (decode_kernels.division_by_reciprocal: then the kernel's x equals torch's)."""
    return (RAW_LOGITS and NUCLEUS_KERNEL and HALF_TOPK and top_p < 1.0 and logits.device.type in HALF_TOPK_DEVICES
            and str(logits.dtype) in decode_kernels.HALF_DTYPES and decode_kernels.available(logits.device)
            and decode_kernels.division_by_reciprocal(temperature, logits.device))


def _top_k_path_raw(raw, temperature: float, row_seeds, step, top_p: float, candidates: int, publish=None):
    """_top_k_path on the half-precision logits as they come, without the float32 copy over the
    temperature (two passes over [B, V] less): with FUSED_GATHER (the default) the normalizer and
    nucleus kernels read the candidates' logits at the top-k's indices and multiply them by the
    reciprocal of the temperature themselves; otherwise the candidates' values are gathered and
    divided by torch (the same per-element operation, so the same bits as x.gather) and the
    normalizer multiplies inside its kernel. Only rows that need the full sort get their float32
    copy."""
    vocab = raw.shape[-1]
    k = min(candidates, vocab - 1)
    if k < 1 or k >= NUCLEUS_KERNEL_MAX:
        return _top_k_path(raw.float() / temperature, row_seeds, step, top_p, candidates, raw, publish)
    idx = raw.topk(k + 1, dim=-1).indices
    scale = decode_kernels.reciprocal(temperature)
    if FUSED_GATHER and raw.stride(1) == 1:  # the kernels read the candidates' logits themselves
        z = decode_kernels.exp_sum64(raw, None, scale, top_at=idx)
        tokens, exact = decode_kernels.nucleus(None, idx, z, row_seeds, step, top_p, _MARGIN, vocab, raw, scale)
    else:
        vals = raw.gather(1, idx).float() / temperature
        z = decode_kernels.exp_sum64(raw, vals[:, :1].double(), scale)
        tokens, exact = decode_kernels.nucleus(vals, idx, z, row_seeds, step, top_p, _MARGIN, vocab)
    return _settle(tokens, exact, lambda rows: (raw if rows is None else raw[rows]).float() / temperature,
                   row_seeds, step, top_p, publish)


def _settle(tokens, exact, x_of, row_seeds, step, top_p: float, publish=None):
    """The top-k path's end: the rows not `exact` take the full sort. `x_of(rows)`: those rows'
    logits over the temperature (rows None: all). `publish(tokens)`, where given, is called before
    the host sync (so that the caller's writes of the tokens queue up behind the kernels instead
    of waiting for the sync) and again with the final tokens if rows changed."""
    if publish is not None:
        publish(tokens)
    if bool(exact.all()):  # one host sync per step
        return tokens, 0
    rows = (~exact).nonzero().squeeze(-1)
    if rows.shape[0] == tokens.shape[0]:
        tokens = _sort_path(x_of(None), row_seeds, step, top_p)
    else:
        step_rows = step if isinstance(step, int) else step[rows]
        tokens[rows] = _sort_path(x_of(rows), row_seeds[rows], step_rows, top_p)
    if publish is not None:
        publish(tokens)
    return tokens, rows.shape[0]


def _top_k_path(x, row_seeds, step, top_p: float, candidates: int, order=None, publish=None):
    """_choose on logits already divided by the temperature: the nucleus looked for among the
    `candidates` largest, the full sort for the rows where that cannot be exact. `order`: the
    logits before the division (half precision, same ranking), for the top-k."""
    import torch

    vocab = x.shape[-1]
    k = min(candidates, vocab - 1)
    if top_p >= 1.0 or k < 1:
        return _sort_path(x, row_seeds, step, top_p), x.shape[0]
    if order is None:
        vals, idx = x.topk(k + 1, dim=-1)  # sorted, descending; the last one is the first left out
    else:  # ties may be ordered otherwise; ties at the edge take the full sort below either way
        idx = order.topk(k + 1, dim=-1).indices
        vals = x.gather(1, idx)
    top = vals[:, :1].double()
    z = _normalizer(x, top)
    if NUCLEUS_KERNEL and k < NUCLEUS_KERNEL_MAX and decode_kernels.available(x.device):
        # what follows, in one kernel per row instead of some 60 small launches
        tokens, exact = decode_kernels.nucleus(vals, idx, z, row_seeds, step, top_p, _MARGIN, vocab)
    else:
        before = _mass_before(vals, top, z)
        edge = _nucleus_edge(vals, before[:, :k], top_p)  # as if the nucleus ends among the candidates
        exact = ((before[:, k] > top_p + _MARGIN)
                 & ~((before[:, :k] - top_p).abs() <= _MARGIN).any(-1)
                 & (edge[:, 0] > vals[:, k]))
        cand_vals, cand_idx = vals[:, :k], idx[:, :k]
        scores = (cand_vals + gumbel_noise_at(row_seeds, step, cand_idx)).masked_fill(
            cand_vals < edge, float("-inf"))
        best = scores.max(-1, keepdim=True).values
        # argmax ties go to the lowest token id, as argmax over the vocabulary does
        tokens = torch.where(scores == best, cand_idx, vocab).min(-1).values
    return _settle(tokens, exact, lambda rows: x if rows is None else x[rows], row_seeds, step, top_p, publish)


class TokenChooser:
    """choose_tokens for one batch, adaptive: when more than `max_fallback` of a step's rows
    needed the full sort (flat distributions: a large nucleus), the next steps look for the
    nucleus among 4x more candidates, up to `max_candidates`; past that they go straight to the
    full-sort path (no topk, no host sync) and the top-k path is tried again every `probe_every`
    steps. `single`: rows whose top token alone holds the nucleus take it first (choose_tokens).
    Tokens are the same on every path."""

    def __init__(self, candidates: int = TOP_K_CANDIDATES, probe_every: int = 16,
                 max_fallback: float = 0.25, max_candidates: int | None = None,
                 single: bool = False):
        self.candidates, self.probe_every, self.max_fallback = candidates, probe_every, max_fallback
        self.max_candidates = max(candidates, max_candidates or candidates)
        self.single = single
        self.sort_until, self.calls = -1, 0

    @classmethod
    def for_device(cls, device) -> "TokenChooser":
        """The chooser continuous batching uses. CPU: a top-k over 256 candidates costs more than
        the tiny model's step and 32 suffice at code-sampling temperatures (wider nuclei take the
        exact full sort), and the single-token test comes first (at temperature 0.2 nearly every
        row of the tiny model is one token: the sampler per step at 120 x 4,096 went from 2.4 to
        0.9 ms). GPU: a top-k over 1024 candidates costs about what one over 256 does (0.61 vs 0.58
        ms at 640 x 49,152) and holds the nucleus of flat distributions (hundreds of tokens); up
        to 4096 before the full sort."""
        if device.type == "cpu":
            return cls(candidates=32, single=True)
        return cls(candidates=1024, max_candidates=4096)

    def __call__(self, logits, row_seeds, step, temperature: float, top_p: float, publish=None):
        """`step`: an int, or an int64 tensor of each row's step (continuous batching), which
        must not change before this returns. `publish(tokens)`: the caller's writes of the
        tokens; it is called at least once, last with the tokens returned, and where the sampler
        waits for the GPU (the top-k path's one sync a step) first before that wait."""
        call, self.calls = self.calls, self.calls + 1
        if temperature > 0 and top_p < 1.0 and call < self.sort_until:
            tokens = _sort_path(logits.float() / temperature, row_seeds, step, top_p)
            if publish is not None:
                publish(tokens)
            return tokens
        calls = []
        tokens, fallback = _choose(logits, row_seeds, step, temperature, top_p, self.candidates,
                                   self.single, None if publish is None else lambda t: calls.append(publish(t)))
        if publish is not None and not calls:
            publish(tokens)
        if temperature > 0 and top_p < 1.0 and fallback > self.max_fallback * logits.shape[0]:
            if self.candidates < self.max_candidates:
                self.candidates = min(4 * self.candidates, self.max_candidates)
            else:
                self.sort_until = call + self.probe_every
        return tokens


def _decode_attention(device):
    """On CUDA, decode steps leave out cuDNN attention: it builds (and caches) an execution plan
    per key length, i.e. a new one at almost every step (tens of ms each); the memory-efficient
    kernel serves any length. Prefill keeps the default choice."""
    import contextlib

    if device.type != "cuda":
        return contextlib.nullcontext()
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:
        return contextlib.nullcontext()
    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                        SDPBackend.MATH])


def _cache_kwarg(model) -> str:
    """transformers renamed `past_key_values` to `cache` (5.2x); accept both versions."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _out_cache(out):
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def sample_batch(model, prompts: list[list[int]], row_seeds: list[int], opts: SamplerOptions,
                 decode: Callable[[list[int]], str] | None = None, preallocate: bool = True,
                 chooser: Callable | None = None) -> list[list[int]]:
    """Sample one continuation per prompt (token id lists); returns the new token ids of each row,
    cut before EOS. `decode` (token ids -> text) is needed when `opts.stop` is not empty.
    `preallocate=False` keeps transformers' DynamicCache as is and `chooser` replaces
    choose_tokens (both for tests and benchmarks: same tokens either way)."""
    import torch

    device = next(model.parameters()).device
    n, width = len(prompts), max(len(p) for p in prompts)
    ids = torch.full((n, width), opts.pad_token_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, width - len(p):] = torch.tensor(p, dtype=torch.long)
        mask[row, width - len(p):] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    seeds = torch.tensor(row_seeds, dtype=torch.int64, device=device)
    rows = torch.arange(n, device=device)  # original row of each live row
    buf = torch.full((n, opts.max_new_tokens), opts.pad_token_id, dtype=torch.long, device=device)
    results: list[list[int] | None] = [None] * n
    kw = _cache_kwarg(model)

    with torch.inference_mode():
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                    logits_to_keep=1)
        cache, logits = _out_cache(out), out.logits[:, -1, :]
        if preallocate:  # KV buffers with room for every new token: no cat per step
            kv_cache.preallocate(cache, opts.max_new_tokens)
        choose = chooser or TokenChooser()
        next_pos = positions[:, -1] + 1
        with _decode_attention(device):
            _decode(model, cache, logits, next_pos, mask, seeds, rows, buf, results, opts, decode,
                    choose, kw)
    return [r if r is not None else [] for r in results]


def _decode(model, cache, logits, next_pos, mask, seeds, rows, buf, results, opts, decode, choose,
            kw):
    """The decode loop of sample_batch: fills `buf` and `results`."""
    import torch

    for step in range(opts.max_new_tokens):
        if opts.eos_token_id is not None and (opts.ignore_eos or step < opts.min_new_tokens):
            logits[:, opts.eos_token_id] = float("-inf")
        tokens = choose(logits, seeds, step, opts.temperature, opts.top_p)
        buf[:, step] = tokens
        last = step + 1 == opts.max_new_tokens
        if last or (step + 1) % opts.check_every == 0:
            done = _finished(buf[:, : step + 1], rows, results, opts, decode, last)
            if done is not None:
                if bool(done.all()):
                    break
                keep = (~done).nonzero().squeeze(-1)
                cache.batch_select_indices(keep)
                rows, seeds, buf = rows[keep], seeds[keep], buf[keep]
                mask, next_pos, tokens = mask[keep], next_pos[keep], tokens[keep]
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        out = model(input_ids=tokens[:, None], attention_mask=mask,
                    position_ids=next_pos[:, None], use_cache=True, **{kw: cache})
        cache, logits = _out_cache(out), out.logits[:, -1, :]
        next_pos = next_pos + 1


def _finished(generated, rows, results, opts: SamplerOptions, decode, last: bool):
    """Record rows that are done (EOS or a stop token id seen, stop string in text, or out of
    tokens) into `results`; return a bool tensor over live rows, or None when no row finished."""
    import torch

    host = generated.tolist()
    row_ids = rows.tolist()
    done = [False] * len(host)
    ends = end_tokens(opts)
    for i, toks in enumerate(host):
        end = first_end(toks, ends)
        if end != -1:
            toks = toks[:end]
            done[i] = True
        elif opts.stop and decode is not None and stop_index(decode(toks), opts.stop) != -1:
            done[i] = True
        if done[i] or last:
            results[row_ids[i]] = toks
            done[i] = True
    if not any(done):
        return None
    return torch.tensor(done, device=generated.device)
