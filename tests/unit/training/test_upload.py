"""checkpoint.upload: a local checkpoint folder is renamed into place when it can be, and copied
when rename refuses (one file system bind-mounted at two places in a container: one st_dev,
but rename(2) does not cross mount points and fails with EXDEV)."""

import errno
import os

import pytest

from multiplt.training import checkpoint


def _folder(path):
    os.makedirs(path)
    with open(os.path.join(path, "model.safetensors"), "w") as f:
        f.write("weights")
    return str(path)


def test_a_local_checkpoint_is_renamed_into_place(tmp_path):
    local = _folder(tmp_path / "work" / "ckpt-1")
    checkpoint.upload(local, str(tmp_path / "out" / "checkpoints" / "rkt-x-epoch1"))
    assert (tmp_path / "out" / "checkpoints" / "rkt-x-epoch1" / "model.safetensors").read_text() == "weights"
    assert not os.path.exists(local)  # moved, not copied


def test_a_rename_across_mount_points_falls_back_to_a_copy(tmp_path, monkeypatch):
    local = _folder(tmp_path / "work" / "ckpt-1")
    real = os.replace

    def cross_device(src, dst):  # the folder's rename only: the copy's own file renames work
        if os.fspath(src) == local:
            raise OSError(errno.EXDEV, "Invalid cross-device link", src, None, dst)
        return real(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", cross_device)
    target = tmp_path / "out" / "checkpoints" / "rkt-x-epoch1"
    checkpoint.upload(local, str(target))
    assert (target / "model.safetensors").read_text() == "weights"


def test_other_rename_errors_are_not_hidden(tmp_path, monkeypatch):
    local = _folder(tmp_path / "work" / "ckpt-1")

    def denied(src, dst):
        raise OSError(errno.EACCES, "Permission denied", src, None, dst)

    monkeypatch.setattr(checkpoint.os, "replace", denied)
    with pytest.raises(OSError, match="Permission denied"):
        checkpoint.upload(local, str(tmp_path / "out" / "ck"))
