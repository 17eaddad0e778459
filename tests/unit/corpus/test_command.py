"""`multiplt corpus build` flags checked before any document is read."""

from multiplt import cli
from multiplt.corpus import extract


def test_typecheck_batch_below_1_is_refused_before_reading(tmp_path, monkeypatch, capsys):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "m.py").write_text('def f(x):\n    """d"""\n    return x * 2 + 1\n')

    def never(doc):
        raise AssertionError(f"{doc.origin} was read")
    monkeypatch.setattr(extract, "extract", never)
    out = tmp_path / "out"
    for value in ("0", "-3"):
        code = cli.main(["corpus", "build", "--source", str(tmp_path / "src"), "--out", str(out),
                         "--typecheck-batch", value])
        assert code == 2 and "--typecheck-batch must be at least 1" in capsys.readouterr().err
    assert not out.exists()
