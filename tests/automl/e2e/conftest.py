"""Fixtures for the end-to-end sweeps."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def ray_tmpdir():
    """A short folder of its own for one sweep's ``RAY_TMPDIR`` (Ray puts its session there, under ``ray/``;
    the path must stay short for Ray's unix sockets), removed after the module."""
    folder = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
