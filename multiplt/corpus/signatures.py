"""Dedup signatures of a kept row, computed in its shard: the exact key (sha1 of the source
with comments and layout normalized) and a MinHash (datasketch) over shingles of `shingle`
consecutive tokens of that normalized source, cut into LSH bands whose keys route candidate
pairs to dedup buckets.

A shard holds every kept row until it writes its parts, so a row's signature is held compactly:
the MinHash values as a stdlib `array` of 4-byte unsigned ints and the band keys as one of
8-byte signed ints (about 0.8 KB a row for 128 permutations, where lists of Python ints took
about 5.3 KB). polars reads both as it read the lists (parts.frame: List(UInt32), List(Int64)),
so kept.parquet is the same file byte for byte."""

from __future__ import annotations

import hashlib
import re
import struct
from array import array

from multiplt.corpus.normalize import layout

TOKEN = re.compile(r"\w+|[^\w\s]")
SEED = 1
# typecodes of exactly 4 and 8 bytes (the C sizes behind them are the platform's)
UINT32 = next(code for code in "IL" if array(code).itemsize == 4)
INT64 = next(code for code in "lq" if array(code).itemsize == 8)


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

    def minhash(self, text: str) -> array:
        """The MinHash values, an array of UINT32 (array() refuses a value that does not fit)."""
        from datasketch import MinHash

        m = MinHash(num_perm=self.num_perm, seed=SEED, permutations=self._template.permutations,
                    scheme="affine32")
        m.update_batch(list(self.shingles(text)))
        return array(UINT32, m.hashvalues.tolist())

    def band_keys(self, values) -> array:
        """One signed 64-bit key per band: (band number, the band's values) hashed; an array of
        INT64."""
        keys = array(INT64)
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


def jaccard(a, b) -> float:
    """The Jaccard similarity estimated from two MinHash signatures."""
    return sum(1 for x, y in zip(a, b) if x == y) / len(a)
