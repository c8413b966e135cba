"""Fixtures for the end-to-end sweeps. Every test in this folder runs the user's `automl run` (a real Ray
sweep, MLflow store, subprocesses): all of them are marked slow (`make test-fast` leaves them out; `make
test` and CI run them)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before `-m "not slow"` deselects
def pytest_collection_modifyitems(config, items):
    mine = [item for item in items if HERE in Path(str(item.fspath)).resolve().parents]
    for item in mine:
        item.add_marker(pytest.mark.slow)
    assert all(item.get_closest_marker("slow") for item in mine)  # before the deselection reads them


@pytest.fixture(scope="module")
def ray_tmpdir():
    """A short folder of its own for one sweep's ``RAY_TMPDIR`` (Ray puts its session there, under ``ray/``;
    the path must stay short for Ray's unix sockets), removed after the module."""
    folder = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    # Ray's deepest socket path adds ~70 characters under it; Unix sockets allow 107
    assert len(str(folder)) <= 30, folder
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
