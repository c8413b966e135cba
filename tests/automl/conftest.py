"""Fixtures for the automl tests: a small TAO-dialect schema written here, and copies of TAO's skill."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest


def _leaf(type_, default, **extra):
    return {"type": type_, "default": default, **extra}


@pytest.fixture
def dialect_schema() -> dict:
    """Every construct of TAO's schema dialect that the search-space builder reads, in one schema."""
    return {
        "type": "object",
        "automl_default_parameters": ["train.optim.lr", "train.optim.lr_decay"],
        "properties": {
            "automl_disabled_parameters": ["stray", "list"],  # TAO's real schemas carry this oddity
            "train": {"type": "object", "properties": {
                "optim": {"type": "object", "properties": {
                    "lr": _leaf("float", 1e-4, minimum=1e-6, maximum=1e-2, math_cond="> 0.0",
                                automl_enabled=True),
                    "min_lr": _leaf("float", 1e-7, minimum=1e-8, maximum=1e-3, automl_enabled="TRUE"),
                    "lr_decay": _leaf("float", 0.1, minimum=0.0, maximum=1.0, math_cond="> 0.0",
                                      automl_enabled=True),
                    "momentum": _leaf("float", 0.9, minimum=0.0, maximum=1.0, automl_enabled=False),
                    "weight_decay": _leaf("float", 1e-4, minimum=0.0, maximum=1e-2, automl_enabled=True),
                    "optimizer": _leaf("categorical", "AdamW", enum=["AdamW", "SGD"],
                                       option_weights=[3, 1], automl_enabled=True),
                    "lr_steps": _leaf("list", [1000], automl_enabled=True),
                    "max_lr": _leaf("float", 1e-3, minimum=1e-6, maximum=1e-2, depends_on="> train.optim.lr",
                                    automl_enabled=True),
                }},
                "clip_grad_norm": _leaf("float", 0.1, math_cond="> 0.0", automl_enabled=True),
                "warmup": _leaf("number", 5.0, minimum=0.0, automl_enabled=True, log_scale=False),
                "scale": _leaf("number", 2.0, exclusiveMinimum=0.0, maximum=8.0, log_scale=True,
                               automl_enabled=True),
                "batch_size": _leaf("int", 4, minimum=1, maximum=64, math_cond="^ 2", automl_enabled=True),
                "crop": _leaf("int", 320, minimum=100, maximum=700, math_cond="/ 32", automl_enabled=True),
                "steps": _leaf("integer", 1000, minimum=1, automl_enabled=True),
                "iters": _leaf("ordered_int", 8, enum=[4, 8, 16], option_weights=[1, 2, 1],
                               automl_enabled=True),
                "shuffle": _leaf("bool", True, automl_enabled=True),
                "name": _leaf("string", "x", automl_enabled=True),
            }},
            "model": {"type": "object", "properties": {
                "cv_group": _leaf("int", 8, minimum=4, maximum=16, automl_enabled=True),
                "train_iters": _leaf("int", 22, minimum=1, maximum=32, automl_enabled=True),
            }},
            "dataset": {"type": "object", "properties": {
                "val_dataset": {"type": "object", "properties": {"augmentation": {"type": "object", "properties": {
                    "color_aug_prob": _leaf("float", 0.2, minimum=0.0, maximum=1.0, automl_enabled=True)}}}},
            }},
        },
    }


@pytest.fixture(scope="session")
def tao_schema(tao_skill_dir: Path) -> dict:
    return json.loads((tao_skill_dir / "schemas" / "train.schema.json").read_text())


@pytest.fixture
def tao_skill_copy(tao_skill_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of TAO's FFS skill directory (tests remove files from it)."""
    dest = tmp_path / tao_skill_dir.name
    shutil.copytree(tao_skill_dir, dest)
    return dest


def tiny_sweep_overrides(root: Path, *, n_train: int = 2, n_val: int = 1, epochs: int = 1) -> list[str]:
    """Synthetic FSD data under `root/data` and the `automl run` overrides that train tiny-demo on it at
    32x64 with one GRU iteration: the cheapest real trial (a few seconds on one core)."""
    from stereo.data.synthetic import generate

    tr = generate(root / "data" / "train", "fsd", n=n_train, height=32, width=64, max_disparity=24, seed=0)
    va = generate(root / "data" / "val", "fsd", n=n_val, height=32, width=64, max_disparity=24, seed=1)
    for ann, n in ((tr, n_train), (va, n_val)):  # a sweep on a short annotation file would test nothing
        assert len(Path(ann).read_text().splitlines()) == n, ann
    return [f"dataset.train_dataset.data_sources[0].data_file={tr}",
            "dataset.train_dataset.data_sources[0].dataset_name=FSD",
            f"dataset.val_dataset.data_sources[0].data_file={va}",
            "dataset.val_dataset.data_sources[0].dataset_name=FSD",
            f"num_epochs={epochs}", "max_steps=-1", "dataset.train_dataset.augmentation.crop_size=[32,64]",
            "model.train_iters=1", "model.valid_iters=1",
            # the template's MultiStepLR milestone (16) lies beyond these short runs, where lr_decay would be
            # dead (automl/plan/dead_params.py) and leave the space; at step 1 it is live from 2 steps on
            "train.optim.lr_steps=[1]"]


@pytest.fixture(autouse=True, scope="session")
def _probe_cache(tmp_path_factory):
    """The memory/time probe's cache (automl/plan/probe.py) lives in this session's temp folder, never in the
    user's ~/.cache; sweeps of one shape share it, so the probe runs once per shape per session."""
    import os

    before = os.environ.get("AUTOML_PROBE_CACHE")
    if os.environ.get("PYTEST_XDIST_WORKER"):  # one cache for all workers of this session (writes are atomic)
        cache = tmp_path_factory.getbasetemp().parent / "probe-cache"
        cache.mkdir(exist_ok=True)
    else:
        cache = tmp_path_factory.mktemp("probe-cache")
    os.environ["AUTOML_PROBE_CACHE"] = str(cache)
    yield
    if before is None:
        os.environ.pop("AUTOML_PROBE_CACHE", None)
    else:
        os.environ["AUTOML_PROBE_CACHE"] = before


@pytest.fixture(scope="session")
def sweep_overrides():
    """`tiny_sweep_overrides` for module-scoped sweep fixtures (conftest helpers are not importable)."""
    return tiny_sweep_overrides


class TrialFaults:
    """Test-only trial failures (tests/automl/trial_faults.py) installed through the sweep's extension point
    ``AUTOML_TRIAL_CALLBACKS``: :meth:`env` for an `automl run` subprocess (its Ray workers inherit it),
    :meth:`install` for a trial run in this process. `plan` is ``<index>=<fault>[@<attempt>],...``."""

    folder = str(Path(__file__).resolve().parent)

    def env(self, plan: str, base: dict | None = None) -> dict:
        import os

        env = dict(os.environ if base is None else base)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (self.folder, env.get("PYTHONPATH")) if p)
        env.update({"AUTOML_TRIAL_CALLBACKS": "trial_faults:inject", "AUTOML_TEST_FAULTS": plan})
        return env

    def install(self, monkeypatch, plan: str) -> None:
        monkeypatch.syspath_prepend(self.folder)
        monkeypatch.setenv("AUTOML_TRIAL_CALLBACKS", "trial_faults:inject")
        monkeypatch.setenv("AUTOML_TEST_FAULTS", plan)


@pytest.fixture(scope="session")
def trial_faults() -> TrialFaults:
    return TrialFaults()
