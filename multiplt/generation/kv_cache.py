"""A preallocated KV cache for our sampler: no re-concatenation of the whole cache per step.

transformers' DynamicCache grows each layer's keys and values with `torch.cat` at every decode
step: the whole cache (24 layers x K and V in StarCoderBase-1B) is copied once per token, into
blocks one token larger each time, which also fragments the CUDA caching allocator. After the
prefill, `preallocate(cache, extra)` swaps each plain DynamicLayer of a DynamicCache for a
`PreallocatedLayer` holding buffers with room for `extra` more tokens; `update` writes the new
token's keys and values in place and returns views of the filled length, so the model sees
exactly the tensors DynamicCache would have given it (same values, same shapes).
`batch_select_indices` (our compaction of finished rows) copies only the filled part of the kept
rows into smaller buffers. `join` and `select` serve continuous batching (continuous.py): caches
of rows that entered at different times are put side by side, right-aligned (shorter ones padded
on the left with zeros, which the attention mask hides), and columns no live row uses any more
are dropped. Anything unexpected (another cache class, sliding-window layers, a
transformers version without `cache.layers`) leaves the cache untouched.
"""

from __future__ import annotations


def _layer_class():
    try:
        from transformers.cache_utils import DynamicLayer
    except ImportError:
        return None
    return DynamicLayer


_PreallocatedLayer = None


def _make_class():
    global _PreallocatedLayer
    base = _layer_class()
    if base is None:
        return None
    if _PreallocatedLayer is not None:
        return _PreallocatedLayer

    class PreallocatedLayer(base):
        """A DynamicLayer whose keys/values are views of the first `length` positions of
        buffers [B, H, capacity, D]."""

        def __init__(self, keys, values, capacity: int):
            super().__init__()
            batch, heads, length, _ = keys.shape
            self.device = keys.device
            self.dtype = keys.dtype
            self._kbuf = keys.new_empty((batch, heads, capacity, keys.shape[-1]))
            self._vbuf = values.new_empty((batch, heads, capacity, values.shape[-1]))
            self._kbuf[:, :, :length].copy_(keys)
            self._vbuf[:, :, :length].copy_(values)
            self._length = length
            self.is_initialized = True
            self._views()

        def _views(self):
            self.keys = self._kbuf[:, :, : self._length]
            self.values = self._vbuf[:, :, : self._length]

        def _grow(self, need: int):
            cap = max(need, 2 * self._kbuf.shape[2])
            for name in ("_kbuf", "_vbuf"):
                old = getattr(self, name)
                new = old.new_empty(old.shape[:2] + (cap,) + old.shape[3:])
                new[:, :, : self._length].copy_(old[:, :, : self._length])
                setattr(self, name, new)

        def update(self, key_states, value_states, *args, **kwargs):
            q = key_states.shape[-2]
            end = self._length + q
            if end > self._kbuf.shape[2]:
                self._grow(end)
            self._kbuf[:, :, self._length:end].copy_(key_states)
            self._vbuf[:, :, self._length:end].copy_(value_states)
            self._length = end
            self._views()
            return self.keys, self.values

        def get_seq_length(self, *args, **kwargs) -> int:
            return self._length

        def _select(self, indices):
            for name in ("_kbuf", "_vbuf"):
                old = getattr(self, name)
                new = old.new_empty((indices.shape[0],) + old.shape[1:])
                new[:, :, : self._length].copy_(old[:, :, : self._length].index_select(0, indices))
                setattr(self, name, new)
            self._views()

        def batch_select_indices(self, indices) -> None:
            self._select(indices.to(self._kbuf.device))

        def reorder_cache(self, beam_idx) -> None:
            self._select(beam_idx.to(self._kbuf.device))

        def batch_repeat_interleave(self, repeats: int) -> None:
            import torch

            idx = torch.arange(self._kbuf.shape[0], device=self._kbuf.device)
            self._select(idx.repeat_interleave(repeats))

        def crop(self, tokens_to_remove: int) -> None:
            if tokens_to_remove > 0:
                raise ValueError("crop takes a negative number of tokens to remove")
            self._length = max(0, self._length + tokens_to_remove)
            self._views()

        def reset(self) -> None:
            self._length = 0
            self._views()

        def offload(self):  # pragma: no cover - not used by our sampler
            raise NotImplementedError("PreallocatedLayer does not offload")

    _PreallocatedLayer = PreallocatedLayer
    return PreallocatedLayer


def _from_parts(parts, capacity: int):
    """A PreallocatedLayer holding the rows of each (keys, values) part, right-aligned at the
    longest part's length; the left padding is zeros (finite under a zero attention weight)."""
    import torch

    cls = _make_class()
    k0, v0 = parts[0]
    length = max(k.shape[2] for k, _ in parts)
    batch = sum(k.shape[0] for k, _ in parts)
    layer = cls.__new__(cls)
    cls.__bases__[0].__init__(layer)
    layer.device, layer.dtype = k0.device, k0.dtype
    layer._kbuf = torch.zeros((batch, k0.shape[1], max(capacity, length), k0.shape[3]),
                              dtype=k0.dtype, device=k0.device)
    layer._vbuf = torch.zeros((batch, v0.shape[1], max(capacity, length), v0.shape[3]),
                              dtype=v0.dtype, device=v0.device)
    row = 0
    for k, v in parts:
        b, n = k.shape[0], k.shape[2]
        layer._kbuf[row: row + b, :, length - n: length].copy_(k)
        layer._vbuf[row: row + b, :, length - n: length].copy_(v)
        row += b
    layer._length, layer.is_initialized = length, True
    layer._views()
    return layer


def supported(cache) -> bool:
    """Whether join/select can work on this cache (a DynamicCache of plain or preallocated
    full-attention layers)."""
    base = _layer_class()
    layers = getattr(cache, "layers", None)
    if base is None or not isinstance(layers, list) or not layers or getattr(cache, "offloading", False):
        return False
    return all(isinstance(layer, base) and getattr(layer, "is_initialized", False)
               and layer.keys is not None and layer.keys.dim() == 4 for layer in layers)


def join(cache, other, extra_tokens: int) -> None:
    """Append the rows of `other` to `cache`, in place, both right-aligned (see _from_parts),
    with room for `extra_tokens` more positions."""
    for i, (a, b) in enumerate(zip(cache.layers, other.layers)):
        length = max(a.keys.shape[2], b.keys.shape[2])
        cache.layers[i] = _from_parts([(a.keys, a.values), (b.keys, b.values)], length + extra_tokens)


def select(cache, indices, drop_left: int, extra_tokens: int) -> None:
    """Keep the rows `indices` of `cache` and drop its first `drop_left` positions, in place."""
    for i, layer in enumerate(cache.layers):
        keys = layer.keys.index_select(0, indices)[:, :, drop_left:]
        values = layer.values.index_select(0, indices)[:, :, drop_left:]
        cache.layers[i] = _from_parts([(keys, values)], keys.shape[2] + extra_tokens)


def preallocate(cache, extra_tokens: int) -> bool:
    """Give each layer of a filled DynamicCache room for `extra_tokens` more positions, in
    place; True when every layer was converted, False (cache unchanged) otherwise."""
    cls = _make_class()
    base = _layer_class()
    layers = getattr(cache, "layers", None)
    if cls is None or not isinstance(layers, list) or not layers:
        return False
    if getattr(cache, "offloading", False):
        return False
    for layer in layers:
        if type(layer) is not base or not getattr(layer, "is_initialized", False):
            return False
        if layer.keys is None or layer.keys.dim() != 4 or layer.keys.numel() == 0:
            return False
    for i, layer in enumerate(layers):
        capacity = layer.keys.shape[-2] + max(0, extra_tokens)
        layers[i] = cls(layer.keys, layer.values, capacity)
    return True
