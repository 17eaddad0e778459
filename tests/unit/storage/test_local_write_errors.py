"""A local write the system refuses (read-only file system, permission denied, disk full, name
too long) is one MultipltError naming the file, whichever step fails; the old content stays and
no temp file is left. Root ignores permission bits, so most refusals are injected where the
system call is made; a name too long is refused for real."""

from __future__ import annotations

import errno
import os
import tempfile

import pytest

from multiplt import storage
from multiplt.errors import MultipltError


def refuse(code):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    return fail


def test_a_name_too_long_is_one_clear_error(tmp_path):
    for target in (tmp_path / ("d" * 300) / "f.json", tmp_path / ("f" * 300)):
        with pytest.raises(MultipltError, match=r"cannot write .*: File name too long$"):
            storage.write_text(str(target), "x")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("module,function,code", [
    (os, "makedirs", errno.EROFS),
    (tempfile, "mkstemp", errno.EACCES),
    (os, "fsync", errno.EIO),
    (os, "chmod", errno.EPERM),
    (os, "replace", errno.EROFS),
])
def test_a_refused_step_is_one_clear_error_and_the_old_file_stays(tmp_path, monkeypatch, module,
                                                                  function, code):
    target = tmp_path / "sub" / "P.results.json.gz"
    storage.write_bytes(str(target), b"old")
    if function == "makedirs":
        target = tmp_path / "new" / "P.results.json.gz"
    monkeypatch.setattr(module, function, refuse(code))
    with pytest.raises(MultipltError) as caught:
        storage.write_bytes(str(target), b"new")
    assert str(caught.value) == f"cannot write {target}: {os.strerror(code)}"
    monkeypatch.undo()
    assert (tmp_path / "sub" / "P.results.json.gz").read_bytes() == b"old"
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["P.results.json.gz"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize("size", [5, 1 << 20])  # refused when flushed / when written
@pytest.mark.parametrize("how", ["write_bytes", "copy"])
def test_a_full_disk_is_one_clear_error_and_the_old_file_stays(tmp_path, monkeypatch, size, how):
    target, src = tmp_path / "out" / "P.json", tmp_path / "src.bin"
    storage.write_bytes(str(target), b"old")
    src.write_bytes(b"x" * size)
    real = os.fdopen

    def full(fd, mode):  # the temp file's writes go to /dev/full: ENOSPC
        os.close(fd)
        return real(os.open("/dev/full", os.O_WRONLY), mode)

    monkeypatch.setattr(os, "fdopen", full)
    with pytest.raises(MultipltError, match=f"^cannot write {target}: No space left on device$"):
        if how == "copy":
            storage.copy(str(src), str(target))
        else:
            storage.write_bytes(str(target), src.read_bytes())
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert [p.name for p in target.parent.iterdir()] == ["P.json"]
