"""One library function per depth_net action, all run through :func:`run_action` (runner.py)."""
from stereo.actions.layout import EXPERIMENT_FILE, action_dir, save_experiment_yaml
from stereo.actions.runner import ActionContext, ActionResult, exit_code, run_action
from stereo.actions.status import STATUS_FILE, StatusLogger, last_finite_kpi, last_kpi, read_status

__all__ = ["EXPERIMENT_FILE", "STATUS_FILE", "ActionContext", "ActionResult", "StatusLogger",
           "action_dir", "exit_code", "last_finite_kpi", "last_kpi", "read_status", "run_action",
           "save_experiment_yaml"]
