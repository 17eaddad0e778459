"""README: `./scripts/test.sh -m "not slow and not e2e and not docker"` runs the fast tier. With
arguments, the real scripts/test.sh joins a marker expression (-m EXPR, -mEXPR, --markexpr EXPR,
--markexpr=EXPR) to "not gpu" as `not gpu and (EXPR)`, passes every other argument (and all that
follows --, as it is) to pytest, and refuses a -m without an expression (exit 2, one message).

Each run only collects (--collect-only) a small test file written into tmp_path with its own
pytest.ini (-c, --rootdir): neither the repository's pyproject.toml nor tests/conftest.py apply,
so what is collected depends on the marker expression alone. scripts/test.sh first runs
`scripts/setup.sh --test`, which is a quick offline check once the environment is set up (its
install stamp); scripts/test.sh itself runs setup before any test, so that is the case in CI."""

from __future__ import annotations

import os
import pathlib
import subprocess

import pytest

# each test runs scripts/test.sh (scripts/setup.sh --test, then pytest) and pytest itself as
# subprocesses: one to three seconds a test, the file over ten on a busy machine
pytestmark = pytest.mark.slow

REPO = pathlib.Path(__file__).resolve().parents[2]

MARKED_TESTS = '''
import pytest

def test_plain(): pass

@pytest.mark.slow
def test_slow(): pass

@pytest.mark.e2e
def test_e2e(): pass

@pytest.mark.docker
def test_docker(): pass

@pytest.mark.gpu
def test_gpu(): pass

@pytest.mark.slow
@pytest.mark.gpu
def test_slow_gpu(): pass

@pytest.mark.docker
@pytest.mark.gpu
def test_docker_gpu(): pass
'''

INI = """[pytest]
markers =
    slow: s
    e2e: e
    docker: d
    gpu: g
addopts = --strict-markers
"""


@pytest.fixture
def marked(tmp_path):
    """The pytest options that collect only the marked tests file (outside the repository)."""
    (tmp_path / "pytest.ini").write_text(INI)
    (tmp_path / "test_marks.py").write_text(MARKED_TESTS)
    return ["--collect-only", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
            "-c", str(tmp_path / "pytest.ini")], str(tmp_path / "test_marks.py")


def _env() -> dict[str, str]:
    # this session's own pytest settings (PYTEST_ADDOPTS, PYTEST_CURRENT_TEST, ...) stay here
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}


def _collected(proc: subprocess.CompletedProcess) -> set[str]:
    return {line.split("::", 1)[1] for line in proc.stdout.splitlines() if "::" in line}


def run_test_sh(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / "scripts" / "test.sh"), *args], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=300)


def pytest_directly(marks: str, *args: str) -> subprocess.CompletedProcess:
    """pytest as scripts/test.sh is to start it: `-m MARKS --durations=25 ARGS...`."""
    return subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-m", "pytest", "-m", marks,
                           "--durations=25", *args], cwd=REPO, env=_env(), capture_output=True,
                          text=True, timeout=300)


ALL_BUT_GPU = {"test_plain", "test_slow", "test_e2e", "test_docker"}


@pytest.mark.parametrize("marker_args, joined, expected", [
    # the README's fast tier; without "not gpu" test_gpu would be collected too
    (["-m", "not slow and not e2e and not docker"],
     "not gpu and (not slow and not e2e and not docker)", {"test_plain"}),
    # -mEXPR; the parentheses matter: "not gpu and slow or gpu" would keep every gpu test
    (["-mslow or gpu"], "not gpu and (slow or gpu)", {"test_slow"}),
    (["--markexpr=e2e or docker"], "not gpu and (e2e or docker)", {"test_e2e", "test_docker"}),
    (["--markexpr", "not e2e"], "not gpu and (not e2e)", {"test_plain", "test_slow", "test_docker"}),
    # arguments but no expression: still "not gpu"
    ([], "not gpu", ALL_BUT_GPU),
], ids=["readme-m", "-mEXPR", "--markexpr=EXPR", "--markexpr-EXPR", "no-expression"])
def test_marker_expression_is_joined_to_not_gpu(marked, marker_args, joined, expected):
    options, path = marked
    proc = run_test_sh(*marker_args, *options, path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _collected(proc) == expected, proc.stdout
    # ... exactly what pytest collects when given the joined expression itself
    direct = pytest_directly(joined, *options, path)
    assert direct.returncode == 0, direct.stdout + direct.stderr
    assert _collected(direct) == expected


def test_what_follows_double_dash_goes_to_pytest_as_it_is(marked):
    """A -m after -- is not joined to "not gpu" by scripts/test.sh: pytest gets `-- PATH -m gpu`
    after test.sh's own `-m "not gpu and (slow)"` and does with it what it does (pytest 9 keeps
    the last -m). Had test.sh taken it, "not gpu and (gpu)" would collect nothing."""
    options, path = marked
    proc = run_test_sh("-m", "slow", *options, "--", path, "-m", "gpu")
    direct = pytest_directly("not gpu and (slow)", *options, "--", path, "-m", "gpu")
    assert (proc.returncode, _collected(proc)) == (direct.returncode, _collected(direct)), (
        proc.stdout + proc.stderr)
    assert _collected(proc) == {"test_gpu", "test_slow_gpu", "test_docker_gpu"}


@pytest.mark.parametrize("args", [["-m"], ["-q", "--markexpr"]], ids=["-m", "--markexpr"])
def test_a_marker_option_without_an_expression_is_refused(args):
    proc = run_test_sh(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.splitlines() == [f"scripts/test.sh: {args[-1]} needs a marker expression"]
    assert "collected" not in proc.stdout  # pytest never started
