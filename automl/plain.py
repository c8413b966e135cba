"""The plain run: one Lightning training of the base spec (the policy said no sweep, or there is nothing to
search), recorded in MLflow with the decision and its reasons."""
from __future__ import annotations

from pathlib import Path

from automl.plan.launch import LaunchPlan
from automl.tune.trial_runs import TaggingTracker


def run_plain(plan: LaunchPlan):
    """One plain training run of the base spec into ``<run_dir>/train``, recorded in MLflow with the decision."""
    from stereo.actions.train import train
    from stereo.config.load import load_spec
    from stereo.tracking import ensure_experiment

    Path(plan.run_dir).mkdir(parents=True, exist_ok=True)
    plan.save()
    spec = load_spec({**plan.base_spec, "results_dir": plan.run_dir}, action="train")
    ensure_experiment(plan.tracking_uri, plan.experiment)
    d = plan.decision
    tracker = TaggingTracker(plan.tracking_uri, {"automl.kind": "plain", "automl.decision": d.mode,
                                                 "automl.policy": d.policy_used,
                                                 "automl.reasons": " | ".join(d.reasons),
                                                 "automl.skill": plan.skill_name}, lambda run_id: None)
    return train(spec, tracker=tracker, experiment=plan.experiment, run_name=f"plain {Path(plan.run_dir).name}")
