"""`multiplt model init-tiny --out`: a folder it may not replace, a file, or a place it cannot write
is one clear error before any work (before torch is even imported), and a write refused at the
end is one clear error too, not an OSError traceback."""

import errno
import os
import subprocess
import sys
import tempfile

import pytest

from multiplt import cli
from multiplt.models import tiny

FLAGS = ["--steps", "1", "--vocab-size", "300", "--layers", "1", "--hidden", "8", "--corpus-bytes", "5000"]


def test_a_bad_out_is_refused_before_torch_is_imported(tmp_path):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "DATA.txt").write_text("important")
    (tmp_path / "afile").write_text("x")
    script = ("import sys\nfrom multiplt import cli\n"
              f"for out in ({str(tmp_path / 'precious')!r}, {str(tmp_path / 'afile')!r}):\n"
              f"    assert cli.main(['model', 'init-tiny', '--out', out, *{FLAGS!r}]) == 2\n"
              "assert 'torch' not in sys.modules, 'torch was imported'\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "holds other files" in done.stderr and "is a file; give a folder" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "precious"]


def refuse(*args, **kwargs):
    raise OSError(errno.EROFS, os.strerror(errno.EROFS))


def test_a_place_it_cannot_write_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    def never(*args, **kwargs):
        raise AssertionError("the corpus was collected")
    monkeypatch.setattr(tiny, "collect_corpus", never)
    monkeypatch.setattr(tempfile, "mkdtemp", refuse)  # root ignores permission bits: inject it
    out = tmp_path / "ro" / "model"
    assert cli.main(["model", "init-tiny", "--out", str(out), *FLAGS]) == 2
    err = capsys.readouterr().err
    assert f"error: cannot write --out {out}: Read-only file system" in err and err.count("error:") == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_write_refused_at_the_end_is_one_clear_error(tmp_path, monkeypatch, capsys):
    pytest.importorskip("transformers")
    real, calls = tempfile.mkdtemp, []

    def second_refused(*args, **kwargs):  # the check passes; the save finds the place read-only
        calls.append(1)
        return real(*args, **kwargs) if len(calls) == 1 else refuse()
    monkeypatch.setattr(tempfile, "mkdtemp", second_refused)
    out = tmp_path / "model"
    assert cli.main(["model", "init-tiny", "--out", str(out), *FLAGS]) == 2
    assert f"error: cannot write --out {out}: Read-only file system" in capsys.readouterr().err
    assert len(calls) == 2 and list(tmp_path.iterdir()) == []
