"""A decode engine for multi-query GPTBigCode (StarCoder) models: one KV-cache slot per in-flight
row, fixed-shape decode steps, and on CUDA each step replayed from a captured CUDA graph.

Why: transformers' forward costs a few hundred small kernel launches and much Python per decode
step (24 layers, masks and cache bookkeeping); at a few hundred rows a step of a 1B model is
then bound by the host, not by the GPU (bench/results/generate_throughput.notes.md). Here:

- the KV cache is a fixed buffer per layer, [rows, capacity, head_dim] for keys and for values
  (multi-query: one KV head); each row owns a slot and keeps its own positions 0..n-1, so a row
  that enters or leaves moves no other row's cache (no joining, no compaction);
- `prefill(slots, prompts)` runs the prompts (right-padded: causal attention never looks at the
  padding after a token) through the model's own modules and writes their keys and values into
  the slots; it returns each prompt's last logits;
- `step()` computes, for every slot at once, the next logits of the token in `tokens` at position
  `pos` (writing its key/value there first), attending to the slot's positions 0..pos. Its shapes
  depend only on the number of slots and a key length L (the longest live row, rounded up to a
  multiple of `bucket`), so on CUDA each L is captured once as a CUDA graph and replayed:
  one launch instead of hundreds (with decode_kernels' attention, which reads each slot's own
  positions, the step does not depend on L: one graph for all). Free slots compute garbage that
  nobody reads.

The math is transformers' (same modules: LayerNorm, Linear, GELU; attention by SDPA with the
query heads laid out as query positions of the single KV head, as transformers' pack_gqa does
for a decode step), in the model's dtype. Where decode_kernels serves (CUDA GPUs of compute
capability 8.0 or later with Triton, bf16/fp16, power-of-two head counts >= 16 and head sizes
>= 16) the decode attention is decode_kernels.mqa_decode instead: each slot reads its own
positions only, not every slot up to the longest row under a mask (same math, float32 softmax
as flash attention), and the step is `_forward_fused`: 7 launches a layer instead of 14 (the
attention kernel writes the step's key and value; residual adds inside the GEMMs; bias + next
LayerNorm in one kernel; the tanh GELU in the up-projection's epilogue).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from multiplt.generation import decode_kernels, mqa_attention


# With decode_kernels, the decode step as _forward_fused (bench/profile_slots.py measures both).
FUSED_STEP = True
# The fused step as two halves of the slots on two CUDA streams (one half's attention beside the
# other half's GEMMs) was tried and removed: 0.83x end to end (H100, generate_throughput.notes.md).


def supported(model) -> bool:
    """A transformers GPTBigCodeForCausalLM with multi-query attention and no cross-attention."""
    config = getattr(model, "config", None)
    return (getattr(config, "model_type", None) == "gpt_bigcode" and bool(getattr(config, "multi_query", False))
            and not getattr(config, "add_cross_attention", False) and hasattr(model, "transformer")
            and hasattr(model, "lm_head") and getattr(model.lm_head, "bias", None) is None)


class SlotDecoder:
    """Static KV cache of `rows` slots x `capacity` positions, prefill into slots, decode steps."""

    def __init__(self, model, rows: int, capacity: int, bucket: int | None = None,
                 graphs: bool | None = None, kernels: bool | None = None):
        param = next(model.parameters())
        self.model, self.device, self.dtype = model, param.device, param.dtype
        config = model.config
        self.n_head, self.embed = config.n_head, config.n_embd
        self.head_dim = self.embed // self.n_head
        self.scale = self.head_dim ** -0.5 if config.scale_attn_weights else 1.0
        cuda = self.device.type == "cuda"
        self.bucket = bucket or (128 if cuda else 1)
        self.capacity = -(-capacity // self.bucket) * self.bucket
        self.rows = rows
        shape = (config.n_layer, rows, self.capacity, self.head_dim)
        self.keys = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self.values = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self.tokens = torch.zeros(rows, dtype=torch.long, device=self.device)  # step inputs
        self.pos = torch.zeros(rows, dtype=torch.long, device=self.device)
        self.graphs = cuda if graphs is None else graphs
        # decode attention by decode_kernels.mqa_decode (each slot's own key length) where it
        # serves: CUDA, half precision, tl.dot's shapes (>= 16 heads, powers of two)
        fits = (self.n_head >= 16 and self.n_head & (self.n_head - 1) == 0
                and self.head_dim >= 16 and self.head_dim & (self.head_dim - 1) == 0)
        usable = fits and decode_kernels.available(self.device, self.dtype)
        if kernels and not usable:
            raise ValueError("the Triton decode kernels are off (decode_kernels.ENABLED) or cannot serve this "
                             "model here (they need a CUDA GPU of compute capability >= 8.0 with Triton, "
                             "bf16/fp16, a power-of-two head count >= 16 and head size >= 16)")
        self.kernels = usable if kernels is None else kernels
        self.tanh_gelu = getattr(config, "activation_function", None) == "gelu_pytorch_tanh"
        self._captured: dict[int, tuple] = {}

    def key_length(self, longest: int) -> int:
        """The key length a step uses when the longest live row needs `longest` positions."""
        return min(self.capacity, -(-longest // self.bucket) * self.bucket)

    # -- prefill -------------------------------------------------------------------------------
    def prefill(self, slots: list[int], prompts: list[list[int]]):
        """Write the prompts' keys/values into `slots` (positions 0..len-1); returns the logits
        after each prompt's last token, [len(prompts), vocab]. A prompt that occurs more than
        once (a problem's samples) runs through the model once; its keys, values and logits go
        to each of its slots."""
        width = max(len(p) for p in prompts)
        if width > self.capacity:
            raise ValueError(f"prompt of {width} tokens does not fit a slot of {self.capacity}")
        index: dict[tuple, int] = {}
        of = [index.setdefault(tuple(p), len(index)) for p in prompts]  # each slot's unique prompt
        unique = [list(p) for p in index]
        n = len(unique)
        ids = torch.zeros((n, width), dtype=torch.long)
        for row, p in enumerate(unique):
            ids[row, : len(p)] = torch.tensor(p, dtype=torch.long)
        ids = ids.to(self.device)
        last = torch.tensor([len(p) - 1 for p in unique], device=self.device)
        where = torch.tensor(slots, device=self.device)
        spread = None if n == len(prompts) else torch.tensor(of, device=self.device)
        t = self.model.transformer
        x = t.wte(ids) + t.wpe(torch.arange(width, device=self.device))[None]
        for i, layer in enumerate(t.h):
            h = layer.ln_1(x)
            q, k, v = layer.attn.c_attn(h).split((self.embed, self.head_dim, self.head_dim), dim=-1)
            self.keys[i, :, :width].index_copy_(0, where, k if spread is None else k[spread])
            self.values[i, :, :width].index_copy_(0, where, v if spread is None else v[spread])
            q = q.view(n, width, self.n_head, self.head_dim).transpose(1, 2)
            a = F.scaled_dot_product_attention(q, k[:, None], v[:, None], is_causal=True, scale=self.scale,
                                               enable_gqa=True)
            x = layer.attn.c_proj(a.transpose(1, 2).reshape(n, width, self.embed)) + x
            x = x + layer.mlp(layer.ln_2(x))
        x = x[torch.arange(n, device=self.device), last]
        logits = self.model.lm_head(t.ln_f(x))
        return logits if spread is None else logits[spread]

    # -- decode --------------------------------------------------------------------------------
    def _forward(self, length: int):
        """Logits [rows, vocab] of `tokens` at `pos`, attending to positions 0..pos of each slot
        (SDPA reads only the first `length` positions; decode_kernels reads 0..pos)."""
        if self.kernels and FUSED_STEP:
            return self._forward_fused()
        t = self.model.transformer
        rows, dim = self.rows, self.head_dim
        x = t.wte(self.tokens) + t.wpe(self.pos)
        if self.kernels:
            lengths = self.pos + 1
        else:
            columns = torch.arange(length, device=self.device)
            bias = torch.zeros((rows, 1, 1, length), dtype=self.dtype, device=self.device)
            bias.masked_fill_((columns[None, :] > self.pos[:, None])[:, None, None, :], float("-inf"))
        at = self.pos[:, None, None].expand(rows, 1, dim)
        groups = None if self.kernels else self._groups(length)
        for i, layer in enumerate(t.h):
            h = layer.ln_1(x)
            q, k, v = layer.attn.c_attn(h).split((self.embed, dim, dim), dim=-1)
            self.keys[i].scatter_(1, at, k[:, None])
            self.values[i].scatter_(1, at, v[:, None])
            if self.kernels:  # each slot reads its own positions 0..pos only
                a = decode_kernels.mqa_decode(q.view(rows, self.n_head, dim), self.keys[i], self.values[i],
                                              lengths, self.scale)
            else:
                q = q.view(rows, 1, self.n_head, dim)  # heads as query positions of the one KV head
                keys, values = self.keys[i, :, None, :length], self.values[i, :, None, :length]
                if groups is None:
                    a = F.scaled_dot_product_attention(q, keys, values, attn_mask=bias, scale=self.scale)
                else:  # each group of slots reads the key columns up to its own longest row only
                    a = mqa_attention.grouped_sdpa(q, keys, values, bias, self.scale, groups)
            x = layer.attn.c_proj(a.reshape(rows, self.embed)) + x
            x = x + layer.mlp(layer.ln_2(x))
        return self.model.lm_head(t.ln_f(x))

    def _forward_fused(self):
        """_forward with decode_kernels: 7 launches per layer instead of 14. The attention kernel
        writes the step's key and value into the cache itself (no scatters); each output
        projection adds the residual stream inside its GEMM (in place, beta = 1), and one kernel
        adds its bias and computes the next LayerNorm (add_layernorm); on CUDA the MLP's tanh
        GELU is the up-projection's cuBLASLt epilogue. Same modules' weights, same math; the
        roundings differ from the module path's: bias and residual are added in the other order,
        the GELU reads the GEMM's float32 accumulator, the new key's score is a float32 sum
        rather than a tl.dot, and the LayerNorm reduces in another order (float32 test: equal to
        the module step to 1e-5)."""
        t = self.model.transformer
        rows, dim, embed = self.rows, self.head_dim, self.embed
        lengths = self.pos + 1
        x = t.wte(self.tokens) + t.wpe(self.pos)
        h = t.h[0].ln_1(x)
        for i, layer in enumerate(t.h):
            attn, mlp = layer.attn, layer.mlp
            q, k, v = F.linear(h, attn.c_attn.weight, attn.c_attn.bias).split((embed, dim, dim), dim=-1)
            a = decode_kernels.mqa_decode(q.view(rows, self.n_head, dim), self.keys[i], self.values[i], lengths,
                                          self.scale, new_k=k, new_v=v)
            x.addmm_(a.view(rows, embed), attn.c_proj.weight.t())  # x += a W^T
            ln = layer.ln_2
            h = decode_kernels.add_layernorm(x, attn.c_proj.bias, ln.weight, ln.bias, ln.eps)
            x.addmm_(self._up(h, mlp), mlp.c_proj.weight.t())
            ln = t.h[i + 1].ln_1 if i + 1 < len(t.h) else t.ln_f
            h = decode_kernels.add_layernorm(x, mlp.c_proj.bias, ln.weight, ln.bias, ln.eps)
        return self.model.lm_head(h)

    def _up(self, h, mlp):
        """The MLP's up-projection and activation; for the tanh GELU on CUDA one cuBLASLt GEMM
        with the GELU in its epilogue (torch._addmm_activation: the tanh approximation there)."""
        if self.tanh_gelu and self.device.type == "cuda":
            return torch._addmm_activation(mlp.c_fc.bias, h, mlp.c_fc.weight.t(), use_gelu=True)
        return mlp.act(F.linear(h, mlp.c_fc.weight, mlp.c_fc.bias))

    def _groups(self, length: int):
        """Without CUDA graphs (the CPU): slots in mqa_attention's groups of neighbours, each
        with the key columns its longest row needs (mqa_attention.grouped_sdpa's spans), so that
        short rows do not read the padding up to the longest row of all. Slots are filled in
        order of prompt length, so neighbours have similar lengths. None with graphs (shapes must
        stay fixed) or when grouping would not save a column."""
        if self.graphs or self.rows < 2 * mqa_attention.GROUPS:
            return None
        pos = self.pos.tolist()
        spans = [(lo, hi, 0, min(length, max(pos[lo:hi]) + 1))
                 for lo, hi in mqa_attention.row_groups(self.rows)]
        return spans if any(end < length for *_, end in spans) else None

    def step(self, length: int):
        """One decode step for every slot with key length `length` (from key_length); returns
        the logits [rows, vocab] (on CUDA a buffer the next step overwrites). One captured graph
        per key length, or one for all with decode_kernels (its step does not read `length`)."""
        if not self.graphs:
            return self._forward(length)
        key = None if self.kernels else length
        captured = self._captured.get(key)
        if captured is None:
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):  # warm-up outside the capture (cuBLAS/SDPA set-up)
                self._forward(length)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = self._forward(length)
            captured = self._captured[key] = (graph, out)
        graph, out = captured
        graph.replay()
        return out
