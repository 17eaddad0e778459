"""Other libraries' output under `multiplt.log.setup_logging`: off a terminal the Hugging Face
libraries' progress bars (which redraw with "\\r") are off through their own switches, without
importing them; their warnings that no handler of theirs prints carry the log's prefix instead of
a bare line; accelerate's "Removed shared tensor" note is DEBUG (see also
tests/integration/test_library_progress.py, which runs real commands)."""

import io
import logging
import os
import subprocess
import sys

import pytest

from multiplt import log

SWITCHES = ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS")
NOISE = ("[RANK 0] Removed shared tensor {'lm_head.weight'} while saving. This should be OK, but check "
         "by verifying that you don't receive any warning while reloading")


def python(code: str, **env) -> str:
    """Run `code` with stderr a pipe (no terminal) and the switches unset unless given."""
    base = {k: v for k, v in os.environ.items() if k not in SWITCHES}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**base, **env})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_off_a_terminal_the_switches_are_set_and_no_library_is_imported():
    code = ("import os, sys\n"
            "from multiplt.log import setup_logging\n"
            "setup_logging()\n"
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'transformers', 'huggingface_hub', "
            "'datasets', 'torch', 'tqdm'})\n"
            "print(os.environ.get('HF_HUB_DISABLE_PROGRESS_BARS'), "
            "os.environ.get('HF_DATASETS_DISABLE_PROGRESS_BARS'), heavy)\n")
    assert python(code) == "1 1 []"
    assert python(code, HF_HUB_DISABLE_PROGRESS_BARS="0") == "0 1 []"  # the user's choice stays


def test_a_library_imported_before_is_told_directly():
    pytest.importorskip("transformers")
    code = ("import huggingface_hub.utils as hub, transformers.utils.logging as tf\n"
            "assert tf.is_progress_bar_enabled() and not hub.are_progress_bars_disabled()\n"
            "from multiplt.log import setup_logging\n"
            "setup_logging()\n"
            "print(tf.is_progress_bar_enabled(), hub.are_progress_bars_disabled())\n")
    assert python(code) == "False True"


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def stderr(monkeypatch):
    """setup_logging on a captured stderr; the root logger's handler it adds is removed after."""
    def setup(verbose=False, stream=None):
        stream = stream or io.StringIO()
        monkeypatch.setattr(sys, "stderr", stream)
        log.setup_logging(verbose)
        return stream

    yield setup
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, log._LibraryWarnings)]


def test_on_a_terminal_the_library_bars_stay(stderr, monkeypatch):
    for name in SWITCHES:
        monkeypatch.delenv(name, raising=False)
    stderr(stream=Terminal())
    assert not any(name in os.environ for name in SWITCHES)


@pytest.mark.parametrize("verbose", [False, True])
def test_library_warnings_carry_the_prefix_and_known_noise_is_debug(stderr, monkeypatch, verbose):
    out = stderr(verbose)
    logging.getLogger("somelib.mod").warning("careful: %s", "x")
    logging.getLogger("somelib.mod").info("not shown")  # the root logger's level: WARNING
    own = io.StringIO()
    lib = logging.getLogger("ownlib")
    monkeypatch.setattr(lib, "handlers", [logging.StreamHandler(own)])
    logging.getLogger("ownlib.sub").warning("printed by its own handler")
    logging.getLogger("accelerate.utils.other").warning(NOISE)
    lines = out.getvalue().splitlines()
    assert lines[0].endswith(" WARNING somelib.mod: careful: x"), lines
    assert own.getvalue() == "printed by its own handler\n"
    assert not any("not shown" in line or "its own handler" in line for line in lines), lines
    if verbose:
        assert len(lines) == 2 and lines[1].endswith(f" DEBUG accelerate.utils.other: {NOISE}"), lines
    else:
        assert len(lines) == 1, lines
