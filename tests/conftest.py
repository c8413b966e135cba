"""Shared test fixtures: reference material, GPU skips, tiny synthetic data."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STEREO_AUTOML_SHARED", REPO.parent / "shared"))
REFERENCE = SHARED / "reference"


def _has_cuda() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except Exception:  # pragma: no cover
        return False


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU; none on this machine")
    skip_shared = pytest.mark.skip(reason=f"reference material not found at {REFERENCE} "
                                   "(a user's clone has no ../shared)")
    have_cuda = _has_cuda()
    for item in items:
        if "gpu" in item.keywords and not have_cuda:
            item.add_marker(skip_gpu)
        if "shared" in item.keywords and not REFERENCE.is_dir():
            item.add_marker(skip_shared)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """../shared/reference; tests using it are skipped with a reason when it is absent."""
    if not REFERENCE.is_dir():
        pytest.skip(f"reference material not found at {REFERENCE} (a user's clone has no ../shared)")
    return REFERENCE


#: byte-for-byte copy of ../shared's real TAO skill (Apache-2.0, see its README), so CI needs no ../shared
TAO_SKILL_FIXTURE = REPO / "tests" / "fixtures" / "tao_skill_ffs" / "tao-train-fast-foundation-stereo"


@pytest.fixture(scope="session")
def tao_skill_dir() -> Path:
    assert (TAO_SKILL_FIXTURE / "references" / "skill_info.yaml").is_file(), (
        f"{TAO_SKILL_FIXTURE} is incomplete; restore tests/fixtures/tao_skill_ffs from git")
    return TAO_SKILL_FIXTURE


@pytest.fixture(autouse=True, scope="session")
def _single_thread_torch():
    """Two cores are shared by everything in CI: keep torch to one intra-op thread in tests."""
    try:
        import torch
        torch.set_num_threads(1)
    except Exception:  # pragma: no cover
        pass
    yield
