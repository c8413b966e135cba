"""automl/tune/trial_callbacks.py: AUTOML_TRIAL_CALLBACKS, the extension point that puts a user's Lightning
callbacks into every trial; each malformed value is one line naming the entry and the fix."""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from automl.policy.decision import PolicyDecision
from automl.tune.trial_callbacks import TrialCallbacksError, TrialInfo, check, trial_callbacks

INFO = TrialInfo("t0003", 3, 2, Path("/r/trials/t0003"), {"train.optim.lr": 0.01})


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_callbacks.py").write_text(textwrap.dedent("""
        import pytorch_lightning as pl

        class Seen(pl.Callback):
            def __init__(self, info):
                self.info = info

        def one(info):
            return Seen(info)

        def two(info):
            return [Seen(info), Seen(info)] if info.attempt > 1 else None

        def wrong(info):
            return "not a callback"

        NOT_CALLABLE = 3
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_callbacks"
    sys.modules.pop("my_callbacks", None)


def test_each_factory_gets_the_trial_and_its_callbacks_join_in_order(user_module):
    made = trial_callbacks(INFO, f"{user_module}:one, {user_module}:two")
    assert len(made) == 3 and all(cb.info is INFO for cb in made)
    assert made[0].info.index == 3 and made[0].info.attempt == 2 and made[0].info.params == {"train.optim.lr": 0.01}
    first_attempt = TrialInfo("t0003", 3, 1, Path("/r/trials/t0003"))
    assert len(trial_callbacks(first_attempt, f"{user_module}:two")) == 0  # None: nothing for this attempt


def test_unset_means_no_callbacks(monkeypatch):
    monkeypatch.delenv("AUTOML_TRIAL_CALLBACKS", raising=False)
    assert trial_callbacks(INFO) == [] and check() == []


@pytest.mark.parametrize("value, says", [
    ("my_callbacks", "'my_callbacks' is not module:function (e.g. my_pkg.callbacks:make)"),
    ("my_callbacks:", "is not module:function"),
    ("no_such_module_here:make", "cannot import 'no_such_module_here'"),
    ("my_callbacks:missing", "'my_callbacks' has no function 'missing'"),
    ("my_callbacks:NOT_CALLABLE", "has no function 'NOT_CALLABLE'"),
])
def test_a_bad_value_is_one_line_naming_the_entry(user_module, value, says):
    problems = check(f"{user_module}:one,{value}")
    assert len(problems) == 1 and problems[0].startswith("AUTOML_TRIAL_CALLBACKS: ") and says in problems[0]
    assert "\n" not in problems[0]


def test_a_factory_that_returns_no_callback_is_an_error(user_module):
    with pytest.raises(TrialCallbacksError, match="my_callbacks:wrong returned 'str', not a pytorch_lightning"):
        trial_callbacks(INFO, f"{user_module}:wrong")


def test_the_sweep_preflight_refuses_a_bad_value(monkeypatch, tmp_path):
    from automl.plan.launch import LaunchPlan
    from automl.tune.backend import preflight

    plan = LaunchPlan(skill_name="x", skill_dir="x", decision=PolicyDecision("sweep", "auto", ()), spec_source="x",
                      base_spec={},
                      overrides=[], run_dir=str(tmp_path), tracking_uri="sqlite:////x.db")
    monkeypatch.setenv("AUTOML_TRIAL_CALLBACKS", "nowhere_to_be_found:make")
    assert any(p.startswith("AUTOML_TRIAL_CALLBACKS: cannot import") for p in preflight(plan))


def test_automl_run_refuses_a_bad_value_in_one_line_before_anything_starts(tmp_path, sweep_overrides):
    import os
    import subprocess

    env = {**os.environ, "AUTOML_TRIAL_CALLBACKS": "my_callbacks_nowhere:make"}
    env.pop("MLFLOW_TRACKING_URI", None)
    out = subprocess.run([sys.executable, "-m", "automl.cli", "run", "--skill", "tiny-demo", "--output",
                          str(tmp_path / "run"), "--num-samples", "2", *sweep_overrides(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    errors = [line for line in out.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "AUTOML_TRIAL_CALLBACKS: cannot import 'my_callbacks_nowhere'" in errors[0], out.stderr
    assert not (tmp_path / "run" / "ledger").exists() and not (tmp_path / "run" / "study.journal").exists()
