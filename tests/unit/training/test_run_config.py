"""The resolved run config a training output keeps (OUT/_multiplt_train.yaml), read on resume: a
damaged one is one clear error, not a parser traceback."""

import pytest

from multiplt.errors import MultipltError
from multiplt.training import checkpoint


@pytest.mark.parametrize("text, message", [
    ("seq_len: [\n", "is not valid YAML"),
    ("- a\n", "is not a run config"),
    ("config: 5\n", "is not a run config"),
])
def test_a_damaged_run_config_is_one_clear_error(tmp_path, text, message):
    (tmp_path / checkpoint.RUN_CONFIG).write_text(text)
    with pytest.raises(MultipltError, match=message):
        checkpoint.read_run_config(str(tmp_path))


def test_a_missing_run_config_is_none_and_a_good_one_reads(tmp_path):
    assert checkpoint.read_run_config(str(tmp_path)) is None
    (tmp_path / checkpoint.RUN_CONFIG).write_text("config: {seq_len: 64}\nprecision: fp32\n")
    assert checkpoint.read_run_config(str(tmp_path)) == {"config": {"seq_len": 64}, "precision": "fp32"}
