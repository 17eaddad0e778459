"""Dedup signatures of a kept row, computed in its shard: the exact key (sha1 of the source
with comments and layout normalized) and a MinHash (datasketch) over shingles of `shingle`
consecutive tokens of that normalized source, cut into LSH bands whose keys route candidate
pairs to dedup buckets."""

from __future__ import annotations

import hashlib
import re
import struct

from multiplt.corpus.normalize import layout

TOKEN = re.compile(r"\w+|[^\w\s]")
SEED = 1


class Signer:
    def __init__(self, num_perm: int = 128, shingle: int = 5, threshold: float = 0.7):
        from datasketch import MinHash
        from datasketch.lsh import _optimal_param

        self.num_perm, self.shingle = num_perm, shingle
        self.bands, self.rows = _optimal_param(threshold, num_perm, 0.5, 0.5)
        self._template = MinHash(num_perm=num_perm, seed=SEED, scheme="affine32")

    def shingles(self, text: str) -> set[bytes]:
        tokens = TOKEN.findall(text)
        k = self.shingle
        if len(tokens) <= k:
            return {" ".join(tokens).encode()}
        return {" ".join(tokens[i:i + k]).encode() for i in range(len(tokens) - k + 1)}

    def minhash(self, text: str) -> list[int]:
        from datasketch import MinHash

        m = MinHash(num_perm=self.num_perm, seed=SEED, permutations=self._template.permutations,
                    scheme="affine32")
        m.update_batch(list(self.shingles(text)))
        return [int(v) for v in m.hashvalues]

    def band_keys(self, values: list[int]) -> list[int]:
        """One signed 64-bit key per band: (band number, the band's values) hashed."""
        keys = []
        for band in range(self.bands):
            chunk = values[band * self.rows:(band + 1) * self.rows]
            digest = hashlib.blake2b(struct.pack(f"<I{len(chunk)}I", band, *chunk), digest_size=8)
            keys.append(int.from_bytes(digest.digest(), "little", signed=True))
        return keys

    def sign(self, row: dict) -> None:
        normal = layout(row["_node"])
        row["exact_key"] = hashlib.sha1(normal.encode()).hexdigest()
        row["minhash"] = self.minhash(normal)
        row["bands"] = self.band_keys(row["minhash"])


def jaccard(a: list[int], b: list[int]) -> float:
    """The Jaccard similarity estimated from two MinHash signatures."""
    return sum(1 for x, y in zip(a, b) if x == y) / len(a)
