"""A shard holds every kept row's dedup signature until it writes its parts: the MinHash values
and band keys are held compactly, and kept.parquet is byte for byte what the lists of Python
ints gave."""

from __future__ import annotations

import hashlib
import io
import random
import struct
import sys

import pytest

from multiplt.corpus import parts
from multiplt.corpus.signatures import SEED, Signer
from tests.unit.corpus.helpers import rows_of

WORDS = ["total", "count", "xs", "item", "key", "value", "n", "acc", "out", "data", "i", "j"]


def random_module(rng: random.Random, functions: int) -> str:
    """Functions with docstrings built from a few shapes and names: exact copies, near copies
    (one name or constant changed) and unrelated ones, so signatures collide and differ."""
    shapes = [
        "def {f}({a}, {b}):\n    \"\"\"{doc}\"\"\"\n    {c} = {k}\n    for {d} in {a}:\n"
        "        if {d} > {b}:\n            {c} += {d} * {k}\n    return {c}\n",
        "def {f}({a}):\n    \"\"\"{doc}\"\"\"\n    {c} = {{}}\n    for {d} in {a}:\n"
        "        {c}[{d}] = {c}.get({d}, 0) + {k}\n    return sorted({c}.items())\n",
        "def {f}({a}, {b}={k}):\n    \"\"\"{doc}\"\"\"\n    return [{d} for {d} in {a} if {d} % {b}]\n",
    ]
    out = []
    for _ in range(functions):
        if out and rng.random() < 0.2:  # an exact copy, but for a comment
            out.append(rng.choice(out).replace(":\n", ":  # again\n", 1))
            continue
        names = {x: rng.choice(WORDS) + (str(rng.randrange(3)) if rng.random() < 0.3 else "")
                 for x in "abcd"}
        if names["a"] == names["b"]:
            names["b"] += "_b"
        doc = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 6)))
        out.append(rng.choice(shapes).format(f=f"f{rng.randrange(functions // 4 + 1)}", doc=doc, k=rng.choice([0, 1, 2, 7, 10**12]),
                                             **names))
    return "\n\n".join(out)


class ReferenceSigner(Signer):
    """The signatures as lists of Python ints: the representation kept.parquet was written from
    before (signatures.py then), kept here to compare with."""

    def minhash(self, text: str) -> list[int]:
        from datasketch import MinHash

        m = MinHash(num_perm=self.num_perm, seed=SEED, permutations=self._template.permutations,
                    scheme="affine32")
        m.update_batch(list(self.shingles(text)))
        return [int(v) for v in m.hashvalues]

    def band_keys(self, values: list[int]) -> list[int]:
        keys = []
        for band in range(self.bands):
            chunk = values[band * self.rows:(band + 1) * self.rows]
            digest = hashlib.blake2b(struct.pack(f"<I{len(chunk)}I", band, *chunk), digest_size=8)
            keys.append(int.from_bytes(digest.digest(), "little", signed=True))
        return keys


def kept_parquet(rows: list[dict]) -> bytes:
    buffer = io.BytesIO()
    parts.frame(rows, parts.KEPT).write_parquet(buffer)  # as storage.write_parquet writes it
    return buffer.getvalue()


def signed(signer: Signer, module: str) -> list[dict]:
    rows = rows_of(module)
    for row in rows:
        signer.sign(row)
        del row["_node"], row["_src"]
    return rows


@pytest.mark.parametrize("seed, num_perm, shingle, threshold", [
    (1, 128, 5, 0.7), (2, 64, 3, 0.5), (3, 256, 1, 0.9), (4, 17, 60, 0.7)])
def test_kept_parquet_is_the_same_file_as_from_lists_of_ints(seed, num_perm, shingle, threshold):
    """Random functions (exact and near copies among them), several MinHash shapes: the same
    values, and the same kept.parquet bytes, as the list-of-ints signatures gave. Shingles of
    60 tokens: most functions are one shingle, so their values spread over all 32 bits."""
    rng = random.Random(seed)
    module = random_module(rng, 60)
    got = signed(Signer(num_perm, shingle, threshold), module)
    want = signed(ReferenceSigner(num_perm, shingle, threshold), module)
    assert len(got) == 60
    for mine, theirs in zip(got, want):
        assert list(mine["minhash"]) == theirs["minhash"] and list(mine["bands"]) == theirs["bands"]
        assert mine["exact_key"] == theirs["exact_key"]
    assert len({row["exact_key"] for row in got}) < 60  # exact copies were met
    if shingle == 60:
        assert any(v >= 2**31 for row in got for v in row["minhash"])  # the unsigned half too
    assert any(v < 0 for row in got for v in row["bands"]) and any(v > 0 for row in got for v in row["bands"])
    assert kept_parquet(got) == kept_parquet(want)
    assert kept_parquet([]) == kept_parquet([])  # an empty shard: fixed columns


def held_bytes(value) -> int:
    """What `value` holds in memory: its own size plus, for a list or tuple, its items'."""
    size = sys.getsizeof(value)
    if isinstance(value, (list, tuple)):
        size += sum(held_bytes(item) for item in value)
    return size


def test_a_kept_rows_signature_is_held_in_under_a_kilobyte():
    """Lists of Python ints held ~5.3 KB a row (128 values and 14 band keys as int objects),
    3.2 GB for a 600k-row shard before it wrote its parts: now 4 and 8 bytes a value."""
    (row,) = signed(Signer(128, 5, 0.7), random_module(random.Random(5), 1))
    assert len(row["minhash"]) == 128 and len(row["bands"]) == 14
    assert held_bytes(row["minhash"]) + held_bytes(row["bands"]) < 1024
