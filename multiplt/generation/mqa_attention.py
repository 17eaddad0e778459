"""Multi-query attention without copying the KV cache per head (StarCoder/GPTBigCode decoding).

transformers' sdpa path repeats the single KV head for every query head before calling SDPA
(16 copies of the whole cache per layer per step in StarCoderBase-1B). While decoding one token,
the 16 query heads can instead be laid out as 16 query *positions* of one head attending to the
one KV head: the same math, no copy. Prefill (several query tokens) uses the stock sdpa path.
On the CPU the rows of a decode step are also split into a few groups of consecutive rows, each
attending only to the key columns some row of the group uses: with continuous batching the cache
is as long as the longest live row (others are left-padded), and the padding would otherwise cost
as much attention work as real keys. Masked columns contribute nothing either way.
`enable(model)` registers this as attention implementation "multiplt_mqa" and switches the model
to it when the model has a single KV head; otherwise it changes nothing.
"""

from __future__ import annotations

NAME = "multiplt_mqa"
_registered = False


def mqa_sdpa_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None,
                     is_causal=None, **kwargs):
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    batch, heads, q_len, dim = query.shape
    if q_len != 1 or key.shape[1] != 1:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, is_causal=is_causal, **kwargs)
    q = query.transpose(1, 2)  # [B, 1, H, D]: heads as query positions of the single KV head
    mask = attention_mask
    if mask is not None:
        mask = mask[:, :, -1:, :]  # [B, 1, 1, L] broadcasts over the H "positions"
        if query.device.type == "cpu" and batch >= 2 * GROUPS and mask.dtype == torch.bool:
            return _grouped(q, key, value, mask, scaling), None
    out = torch.nn.functional.scaled_dot_product_attention(q, key, value, attn_mask=mask,
                                                           dropout_p=0.0, scale=scaling)
    # [B, 1, H, D] is already the [B, q_len=1, H, D] layout the callers expect
    return out, None


GROUPS = 8  # CPU decode: row groups that each skip the key columns none of their rows uses


def row_groups(batch: int) -> list[tuple[int, int]]:
    """`batch` rows in GROUPS blocks of consecutive rows, (lo, hi) each."""
    size = -(-batch // GROUPS)
    return [(lo, min(batch, lo + size)) for lo in range(0, batch, size)]


def grouped_sdpa(q, key, value, mask, scale, spans):
    """SDPA block by block: `spans` holds (lo, hi, first, end), rows lo..hi-1 attending to key
    columns first..end-1 only (end None: to the last); the columns left out must be masked for
    those rows, so the result is that of one SDPA over all columns."""
    import torch

    sdpa = torch.nn.functional.scaled_dot_product_attention
    out = q.new_empty(q.shape)
    for lo, hi, first, end in spans:
        out[lo:hi] = sdpa(q[lo:hi], key[lo:hi, :, first:end], value[lo:hi, :, first:end],
                          attn_mask=mask[lo:hi, :, :, first:end], dropout_p=0.0, scale=scale)
    return out


def _grouped(q, key, value, mask, scaling):
    """Left-padded rows (transformers' cache): each group from its earliest used column."""
    import torch

    starts = mask[:, 0, 0, :].to(torch.uint8).argmax(-1).tolist()  # first used column per row
    return grouped_sdpa(q, key, value, mask, scaling,
                        [(lo, hi, min(starts[lo:hi]), None) for lo, hi in row_groups(q.shape[0])])


def enable(model) -> bool:
    """Use the copy-free MQA decode path for `model` if it is multi-query; True when switched."""
    global _registered
    config = model.config
    if not getattr(config, "multi_query", False):
        return False
    try:
        from transformers import AttentionInterface
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask
    except ImportError:
        return False
    if not _registered:
        AttentionInterface.register(NAME, mqa_sdpa_forward)
        ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
        _registered = True
    config._attn_implementation = NAME
    for sub in model.modules():
        if hasattr(sub, "config") and sub.config is not config:
            sub.config._attn_implementation = NAME
    return True
