"""Two validations of one shard at once (an Airflow try that stalled beside its retry): each
saves the functions it validated as parts of `checks/`, and neither replaces the other's."""

from __future__ import annotations

import threading

from multiplt.testgen import execute
from multiplt.testgen.validate import Check


def check(key: str) -> Check:
    return Check(key=key, prefix=f"def {key}(x):\n    return x\n", entrypoint=key,
                 asserts=[f"assert {key}(1) == 1"])


def test_two_validations_at_once_keep_both_saved_parts(tmp_path):
    folder = str(tmp_path / "checks")
    start = threading.Barrier(2)
    errors = []

    def validate(key):  # both count the folder's parts (none yet) before either saves
        try:
            start.wait()
            execute.run_all([check(key)], folder, workers=1, timeout=10)
        except BaseException as exc:  # noqa: BLE001 (the test reports it)
            errors.append(exc)

    threads = [threading.Thread(target=validate, args=(key,)) for key in ("f", "g")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    saved = execute.load_saved(folder)
    assert sorted(saved) == ["f", "g"]
    assert all(saved[k]["statuses"] == ["OK"] for k in saved), saved
