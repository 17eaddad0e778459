"""Fixtures of the translate command's unit tests: the recorded inputs and a guard on sampling."""

import pytest

from tests.fixtures import translate as fx


@pytest.fixture
def inputs(tmp_path):
    """The translate fixture's tests dataset and replay files (tests/fixtures/translate)."""
    return fx.write(tmp_path / "in")


@pytest.fixture
def no_work(monkeypatch):
    """Fails the test when a sample is drawn; the list records the attempt."""
    from multiplt.generation import driver

    done = []

    def sample(*args, **kwargs):
        done.append("sampled")
        raise AssertionError("the backend was called")

    monkeypatch.setattr(driver, "generate", sample)
    return done

