"""What Ray runs in a worker for each trial: the Ray-free trial (automl/tune/trial.py) with Ray's reporter,
as a function trainable whose stop waits for the trial's thread to finish its records."""
from __future__ import annotations

from typing import Any, Dict

from automl.tune.trial import TrialContext


def _trainable(config: Dict[str, Any], ctx: TrialContext) -> None:
    """What Ray runs in a worker: the Ray-free trial with Ray's reporter."""
    import ray
    from ray import tune
    from ray.train._internal.session import get_session

    from automl.tune.trial import run_trial

    if ctx.deploy.get("stage") == "deploy":  # a deploy-only sweep: no training (automl/tune/deploy_trial.py)
        from automl.tune.deploy_trial import run_deploy_trial as run_trial

    session = get_session()
    stopped = []

    def report(metrics: Dict[str, Any]) -> None:
        try:
            tune.report(metrics)
        except SystemExit:
            stopped.append(True)
            raise

    if ctx.workers > 1:  # train.num_gpus > 1: Ray Train's workers, DDP (automl/tune/data_parallel.py)
        from automl.tune.data_parallel import run_data_parallel_trial as run_trial  # noqa: F811
    run_trial(config, ctx, report, node=ray.get_runtime_context().get_node_id(),
              stop_requested=(lambda: session.stop_event.is_set()) if session is not None else None)
    if stopped:
        # Ray told this thread to stop and the trial ended cleanly; returning would make Ray's wrapper report
        # a last result that nobody collects any more, blocking the thread (and the actor's reuse) for good
        raise SystemExit(0)


#: how long a stopped trial's worker may take to finish its records (status.json, checkpoint artifact,
#: MLflow run) before Ray may end it; a scheduler's stop arrives after the epoch's checkpoint is written
STOP_GRACE_S = 120


def trial_trainable(ctx: TrialContext):
    """Ray's function trainable for `_trainable`, except that stopping it waits for the trial's thread.

    Ray ends a stopped trial's actor as soon as ``cleanup`` returns, and its ``cleanup`` does not wait
    for the training thread (``finish(timeout=0)``): a trial stopped early by the scheduler would be
    killed while it writes status.json, logs its checkpoint and closes its MLflow run. A reused actor
    already waits (``reset_config``, TUNE_FUNCTION_THREAD_TIMEOUT_S); this makes the last ones wait too.
    """
    from ray import tune
    from ray.train._internal.session import get_session
    from ray.tune.trainable.function_trainable import wrap_function

    base = wrap_function(tune.with_parameters(_trainable, ctx=ctx), name="trial")

    class GracefulTrial(base):
        def cleanup(self):
            session = get_session()
            if session is not None and session.training_started:
                session.finish(timeout=STOP_GRACE_S)  # sets the stop, lets a blocked report() raise, joins
            super().cleanup()

    return GracefulTrial
