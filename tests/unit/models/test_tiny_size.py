"""`multiplt model init-tiny` refuses a model too big for this machine's memory, and a seed torch
cannot take, up front (one line, exit 2, nothing written); `multiplt model` alone is argparse's
"required" error like every other command group."""

import re
import subprocess
import sys

import pytest

from multiplt import cli
from multiplt.errors import MultipltError
from multiplt.models import tiny_size
from multiplt.models.tiny import TinyConfig

SMALL = ["--steps", "1", "--vocab-size", "300", "--corpus-bytes", "2000"]


def test_a_model_too_big_for_the_memory_is_refused_before_torch_is_imported(tmp_path):
    out = tmp_path / "huge"
    script = ("import sys\nfrom multiplt import cli\n"
              f"code = cli.main(['model', 'init-tiny', '--out', {str(out)!r}, *{SMALL!r}, "
              "'--hidden', '4000000', '--layers', '1'])\n"
              "assert 'torch' not in sys.modules, 'torch was imported'\n"
              "sys.exit(code)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert re.fullmatch(r"multiplt model: error: tiny model too big: 168,009,446,000,000 parameters "
                        r"\(--hidden 4000000, --layers 1, --vocab-size 300\) need at least 2,503,795.2 GiB to train; "
                        r"this machine has [0-9,]+\.[0-9] GiB\n", done.stderr), done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flag", ["--hidden", "--layers", "--vocab-size"])
def test_a_size_of_any_magnitude_is_one_short_line(tmp_path, capsys, flag):
    huge = "4" + "0" * 500
    assert cli.main(["model", "init-tiny", "--out", str(tmp_path / "t"), flag, huge]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "tiny model too big: ~10^" in err and "GiB to train" in err
    assert list(tmp_path.iterdir()) == []


def test_the_memory_needed_is_checked_against_the_machines(monkeypatch):
    config = TinyConfig(n_embd=64, n_layer=2, vocab_size=1000)
    need = tiny_size.training_bytes(config)
    monkeypatch.setattr(tiny_size, "machine_memory", lambda: need)
    tiny_size.check_fits(config)  # fits exactly
    monkeypatch.setattr(tiny_size, "machine_memory", lambda: need - 1)
    with pytest.raises(MultipltError, match="tiny model too big"):
        tiny_size.check_fits(config)
    monkeypatch.setattr(tiny_size, "machine_memory", lambda: None)  # unknown: not refused
    tiny_size.check_fits(TinyConfig(n_embd=1 << 40))


@pytest.mark.parametrize("shape", [dict(), dict(n_embd=32, n_layer=1, vocab_size=300),
                                   dict(n_embd=96, n_layer=3, vocab_size=777)])
def test_the_parameter_count_is_the_models(shape):
    transformers = pytest.importorskip("transformers")
    config = TinyConfig(**shape)
    model = transformers.GPTBigCodeForCausalLM(transformers.GPTBigCodeConfig(
        vocab_size=config.vocab_size, n_positions=config.n_positions, n_embd=config.n_embd,
        n_layer=config.n_layer, n_head=config.n_head, multi_query=True))
    assert tiny_size.parameter_count(config) == sum(p.numel() for p in model.parameters())


def test_the_default_model_fits_here():
    tiny_size.check_fits(TinyConfig())


@pytest.mark.parametrize("seed", [str(2 ** 64), str(-2 ** 63 - 1)])
def test_a_seed_torch_cannot_take_is_refused(tmp_path, capsys, seed):
    assert cli.main(["model", "init-tiny", "--out", str(tmp_path / "t"), *SMALL, "--seed", seed]) == 2
    err = capsys.readouterr().err
    assert err == f"multiplt model: error: --seed must be in [-2**63, 2**64), got {seed}\n"
    assert list(tmp_path.iterdir()) == []


def test_model_without_a_subcommand_is_the_required_error_of_every_group():
    for group in ("model", "corpus"):
        done = subprocess.run([sys.executable, "-m", "multiplt", group], capture_output=True, text=True)
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.splitlines()[-1] == \
            f"multiplt {group}: error: the following arguments are required: SUBCOMMAND"
