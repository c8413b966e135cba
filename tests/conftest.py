"""Shared test fixtures: reference material, GPU skips, tiny synthetic data."""
from __future__ import annotations

import os
import signal
import subprocess
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
def _cache_dir(tmp_path_factory):
    """stereo-automl's machine cache (the migrated MLflow store template, stereo/tracking/store_template.py)
    lives in this session's temp folder, never in the user's ~/.cache; every process of the session (pytest
    workers, CLIs, Ray trials) shares it through the environment, so the template is made once a session."""
    before = os.environ.get("STEREO_CACHE_DIR")
    if os.environ.get("PYTEST_XDIST_WORKER"):  # one cache for all workers (the template is written atomically)
        cache = tmp_path_factory.getbasetemp().parent / "stereo-cache"
        cache.mkdir(exist_ok=True)
    else:
        cache = tmp_path_factory.mktemp("stereo-cache")
    os.environ["STEREO_CACHE_DIR"] = str(cache)
    yield cache
    if before is None:
        os.environ.pop("STEREO_CACHE_DIR", None)
    else:
        os.environ["STEREO_CACHE_DIR"] = before


@pytest.fixture(autouse=True, scope="session")
def _single_thread_torch():
    """Two cores are shared by everything in CI: keep torch to one intra-op thread in tests."""
    try:
        import torch
        torch.set_num_threads(1)
    except Exception:  # pragma: no cover
        pass
    yield


class _Spawner:
    """``subprocess.Popen`` in a new session, remembered; :meth:`cleanup` kills each whole session's
    process group (the driver, the Ray nodes and trial workers it started, a server and its workers),
    also when the test failed half-way, so that no process outlives the test that started it."""

    def __init__(self):
        self.started = []

    def __call__(self, argv, **kwargs):
        kwargs.setdefault("start_new_session", True)
        proc = subprocess.Popen(argv, **kwargs)
        self.started.append(proc)
        return proc

    def cleanup(self):
        for proc in self.started:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # members may outlive their leader: the group still exists
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:  # pragma: no cover - unkillable (D state); nothing more to do
                pass


@pytest.fixture
def spawn():
    spawner = _Spawner()
    yield spawner
    spawner.cleanup()


@pytest.fixture(scope="module")
def spawn_module():
    """:func:`spawn` for module-scoped fixtures (a sweep shared by a module's tests)."""
    spawner = _Spawner()
    yield spawner
    spawner.cleanup()
