"""Signatures and the cluster logic of the dedup pass; one bucket count per --out."""

from multiplt import cli
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


def test_a_bucket_of_another_count_is_refused_before_it_breaks_the_folder(tmp_path, capsys):
    """Buckets of two counts under one --out leave a folder the merge can never use: the second
    count is refused before anything is written, and the folder still merges."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "m.py").write_text(LONG)
    out = str(tmp_path / "out")
    assert cli.main(["corpus", "build", "--source", str(tmp_path / "src"), "--out", out, "--shard", "0/1",
                     "--no-typecheck"]) == 0
    assert cli.main(["corpus", "dedup", "--out", out, "--bucket", "0/1"]) == 0
    capsys.readouterr()
    assert cli.main(["corpus", "dedup", "--out", out, "--bucket", "0/2"]) == 2
    err = capsys.readouterr().err
    assert (f"{out} holds dedup buckets of a 1-bucket run (finished: 0/1), not of 2: give --bucket B/1, "
            "or use a fresh --out for 2 buckets" in err and err.count("error:") == 1)
    assert sorted(p.name for p in (tmp_path / "out" / "_work" / "dedup").iterdir()) == ["00000-of-00001"]
    assert cli.main(["corpus", "dedup", "--out", out, "--bucket", "0/1"]) == 0  # the same count: skipped
    assert cli.main(["corpus", "merge", "--out", out]) == 0
