"""Signatures and the cluster logic of the dedup pass."""

from multiplt.corpus.merge import Clusters
from multiplt.corpus.signatures import Signer, jaccard
from tests.unit.corpus.helpers import row_of

LONG = '''def hist(text, n):
    """Word counts."""
    counts = {}
    for raw in text.split():
        word = raw.strip(".,").lower()
        if len(word) >= n:
            counts[word] = counts.get(word, 0) + 1
    pairs = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return dict(pairs)
'''


def signed(source):
    row = row_of(source)
    Signer().sign(row)
    return row


def test_exact_key_ignores_comments_and_layout_but_not_code():
    a = signed(LONG)
    b = signed(LONG.replace("    counts = {}\n", "    counts = {}   # words\n\n"))
    c = signed(LONG.replace("+ 1", "+ 2"))
    assert a["exact_key"] == b["exact_key"] != c["exact_key"]


def test_near_copies_share_a_band_and_unrelated_code_does_not():
    signer = Signer(128, 5, 0.7)
    assert (signer.bands, signer.rows) == (14, 9)  # datasketch's optimum for 0.7 of 128
    a, b = signed(LONG), signed(LONG.replace(".lower()", ".casefold()"))
    other = signed('def f(xs):\n    """Squares."""\n    out = [x * x for x in xs if x]\n    return out\n')
    assert jaccard(a["minhash"], b["minhash"]) >= 0.7
    assert set(a["bands"]) & set(b["bands"])
    assert jaccard(a["minhash"], other["minhash"]) < 0.3 and not set(a["bands"]) & set(other["bands"])


def test_clusters_keep_the_smallest_id():
    clusters = Clusters()
    clusters.union("c", "b")
    clusters.union("d", "c")
    clusters.union("x", "y")
    assert {clusters.find(i) for i in "bcd"} == {"b"} and clusters.find("y") == "x"
