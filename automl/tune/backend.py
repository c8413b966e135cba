"""The sweep launcher: with automl/tune/ray_session.py the only modules that import Ray and Optuna (STYLE habit 8),
both lazily.

``run_tune`` (called by automl/driver.py ``run_sweep``) runs the plan's remaining trials with Ray Tune:
what is searched is an Optuna define-by-run function (Optuna's distributions, built by automl/space/param.py;
relations applied at sample time), how is ``TuneConfig`` (OptunaSearch + ASHA / asynchronous HyperBand /
FIFO, ``num_samples``, ``max_concurrent_trials``, what is left of the time budget, ``reuse_actors``), where is
``RunConfig`` (``storage_path`` = the run folder, retries, a callback forwarding trial events to
automl/tune/events.py). automl/tune/ray_session.py starts the embedded Ray (loopback only) or joins a
cluster whose nodes must all see the run folder; automl/tune/trainable.py is what runs in a worker.

Resuming does not use ``Tuner.restore``: after a SIGKILL its experiment state is stale and it re-runs
finished trials (stack_facts §3). The ledger (automl/tune/ledger.py) is the truth instead: each attempt is a
fresh Tune experiment (``<run_dir>/tune/attempt-N``) on the sweep's Optuna study in the run folder
(``study.journal``, automl/tune/study.py), first made to agree with the ledger (same numbers, values,
states), so TPE/GP keep their history, trial numbers stay unique, and only the remaining budget runs.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from automl.space.grid import grid_points
from automl.plan.launch import LaunchPlan
from automl.tune.ledger import Ledger, trial_id_for
from automl.space.build import SearchSpace
from automl.tune.study import (STUDY_NAME, Goals, enqueue_missing, open_study, seed_study, study_storage, sync_study,
                               tell_verdict)
from automl.tune.trainable import trial_trainable
from automl.tune.trial import TrialContext
from automl.tune.trial_runs import INDEX_KEY


# --- search space -> Optuna --------------------------------------------------------------------
class DefineByRun:
    """Optuna define-by-run space: parents first, each child's range narrowed by its `depends_on`
    (:meth:`SearchSpace.suggest`; each parameter's Optuna distribution is :attr:`Param.optuna`).

    A plain class (not a closure) because OptunaSearch pickles its space with the searcher state.
    """

    def __init__(self, space: SearchSpace):
        self.space = space

    def distributions(self, values: Mapping[str, Any]) -> Dict[str, Any]:
        """The Optuna distribution of every parameter given the (parent) values."""
        return {name: self.space.conditioned(name, values).optuna for name in self.space.names}

    def __call__(self, trial) -> Dict[str, Any]:
        self.space.suggest(trial)  # the suggest_* calls record the values; OptunaSearch merges them in
        return {INDEX_KEY: trial.number}


def _sampler(plan: LaunchPlan, attempt: int = 1):
    import optuna

    # a resumed attempt must not replay the first attempt's random draws (TPE's startup trials are random
    # and their stream depends only on the seed, not on the history the study is pre-loaded with)
    seed = plan.seed + 7919 * (attempt - 1)
    name = plan.algorithm
    # Optuna's model-based samplers draw 10 random points before modelling anything; with the small
    # budgets of CPU sweeps (8-30 trials) that is most of the sweep. A quarter of the budget (2..10)
    # keeps the random warm-up without turning the whole sweep into random search.
    startup = max(2, min(10, int(plan.num_samples) // 4))
    # --constraint: TPE, NSGA-II and GP read each trial's constraint values (Optuna 5's trial.constraints, set
    # by the driver when it tells the verdict: automl/tune/study.py)
    if name == "tpe":  # TPE handles one objective and several (MOTPE)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    if name == "nsga2":  # a generation is a third of the budget: 50 (Optuna's default) would be all random here
        population = max(2, min(50, int(plan.num_samples) // 3))
        from automl.tune.nsga2 import PicklableNSGAIISampler  # Ray pickles the sampler; Optuna's holds a lock

        return PicklableNSGAIISampler(seed=seed, population_size=population)
    if name in ("random", "grid"):  # grid: the points are enqueued; the sampler is never consulted for them
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "bayesian":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=startup)
    raise ValueError(f"--algorithm {name!r} is unknown; use tpe, nsga2, random, grid, bayesian or cmaes")


def plan_goals(plan: LaunchPlan) -> Optional[Goals]:
    """The study's objectives and constraints; None for one objective that is the ledger's metric, unconstrained
    (the study's value is then the trial's best validation, as always)."""
    objectives, constraints = plan.goals()
    if len(objectives) == 1 and objectives[0].name == plan.metric and not constraints:
        return None
    return Goals(tuple(objectives), tuple(constraints))


def _modes(plan: LaunchPlan) -> List[str]:
    return [o.mode for o in plan.goals()[0]]


def _searched(plan: LaunchPlan):
    """(metric, mode) for OptunaSearch: lists for several objectives (Ray validates each report holds them)."""
    objectives = plan.goals()[0]
    if len(objectives) > 1:
        return [o.name for o in objectives], [o.mode for o in objectives]
    return objectives[0].name, objectives[0].mode


def preflight(plan: LaunchPlan) -> List[str]:
    """Problems that would stop the sweep before it starts (missing optional sampler packages, a bad
    ``AUTOML_TRIAL_CALLBACKS``)."""
    from automl.tune.trial_callbacks import check

    problems = check() if plan.sweep else []
    if plan.sweep and plan.algorithm == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ImportError:
            problems.append("--algorithm cmaes needs the `cmaes` package (pip install cmaes); or use "
                            "--algorithm tpe or bayesian")
    if plan.sweep and plan.algorithm == "bayesian":
        try:
            import scipy  # noqa: F401
        except ImportError:
            problems.append("--algorithm bayesian (GPSampler) needs scipy; or use --algorithm tpe")
    return problems


def prepare_study(plan: LaunchPlan, space: SearchSpace, ledger: Ledger):
    """The sweep's study in the run folder (automl/tune/study.py), made to agree with the ledger, plus, for
    grid, the points still to run enqueued. Returns (storage, number of trials this attempt runs)."""
    storage = study_storage(plan.run_dir)
    study = open_study(plan.run_dir, _modes(plan), storage)
    goals, warm = plan_goals(plan), plan.warm_start or {}
    if warm.get("trials") and not study.get_trials(deepcopy=False):  # a new (or rebuilt) study: seed it first
        seed_study(study, warm["trials"], DefineByRun(space).distributions, warm["source"], goals)
    sync_study(study, ledger, plan.metric, DefineByRun(space).distributions, goals)
    if plan.algorithm == "grid":
        points, _ = grid_points(space, plan.grid_points)
        return storage, enqueue_missing(study, points, [t["params"] for t in ledger.counted()])
    return storage, max(0, plan.num_samples - len(ledger.counted()))


def record_study(plan: LaunchPlan, space: SearchSpace, ledger: Ledger) -> None:
    """After an attempt, with no trial running: the study file agrees with every verdict in the ledger
    (also those the driver wrote after Ray stopped, for trials a stop or a dead driver left running)."""
    sync_study(open_study(plan.run_dir, _modes(plan)), ledger, plan.metric, DefineByRun(space).distributions,
               plan_goals(plan))


# --- the driver-side callback: Ray's trial events -> automl/tune/events.py --------------------------------
def _ledger_callback(ledger: Ledger, plan: LaunchPlan, study, printer, tick=None, progress=None):
    from ray.tune import Callback

    from automl.tune.events import TrialEvents
    from stereo.tracking import MlflowTracker

    events = TrialEvents(ledger, metric=plan.metric, max_t=plan.max_t, max_failures=plan.max_failures,
                         experiment=plan.experiment, printer=printer, tick=tick, progress=progress,
                         tracker=MlflowTracker(plan.tracking_uri) if plan.tracking_uri else None)

    def told(config: Mapping[str, Any]) -> None:
        """The study learns the verdict the ledger now holds (automl/tune/study.py); the end of the attempt
        syncs again, so a failure here only delays it."""
        try:
            index = int(config[INDEX_KEY])
            tell_verdict(study, index, ledger.trial(trial_id_for(index)), plan.metric, plan_goals(plan))
        except Exception as exc:  # noqa: BLE001 - the ledger holds the verdict; the study catches up at the end
            printer(f"warning: could not tell the Optuna study trial {config.get(INDEX_KEY)}'s verdict: {exc}")

    class LedgerCallback(Callback):
        """Forwards each trial event to :class:`automl.tune.events.TrialEvents` (ledger verdicts, MLflow runs
        closed, one console line), then tells the study the verdict; the trial process itself may be dead
        or stopped mid-step."""

        def on_trial_start(self, iteration, trials, trial, **info):
            events.started(trial.config)

        def on_trial_result(self, iteration, trials, trial, result, **info):
            events.tick()

        def on_step_end(self, iteration, trials, **info):
            events.heartbeat()  # the progress line at least every PROGRESS_EVERY_S while trials train

        def on_trial_complete(self, iteration, trials, trial, **info):
            events.completed(trial.config)
            told(trial.config)

        def on_trial_recover(self, iteration, trials, trial, **info):
            events.retrying(trial.config, trial.num_failures, _died(trial, ledger))

        def on_trial_error(self, iteration, trials, trial, **info):
            events.errored(trial.config, _died(trial, ledger))
            told(trial.config)

    return LedgerCallback()


@functools.lru_cache(maxsize=1)
def _verdict_search():
    """Ray's OptunaSearch, except that the study is told each trial's verdict by the driver once the ledger
    holds it (:func:`_ledger_callback`) instead of the trial's *last* result here: a completed trial is
    COMPLETE with its best value, an early-stopped one PRUNED, a failed one FAIL (automl/tune/study.py).
    Ray calls this before the callbacks that write the verdict, so it must not tell the study itself."""
    from ray.tune.search.optuna import OptunaSearch

    class VerdictSearch(OptunaSearch):
        def on_trial_complete(self, trial_id: str, result: Optional[Dict] = None, error: bool = False) -> None:
            self._ot_trials.pop(trial_id, None)  # the study keeps the trial; the driver tells it

    return VerdictSearch


def _record_errors(results, ledger: Ledger) -> None:
    """Trials Ray aborted without telling callbacks (e.g. a failed actor reuse) still get their verdict."""
    from automl.tune.events import sampled, trial_id_of

    for result in results:
        config = result.config or {}
        if result.error is None or INDEX_KEY not in config:
            continue
        tid = trial_id_of(config)
        if not ledger.is_final(tid):
            reason = (ledger.progress(tid) or {}).get("error") or (str(result.error).strip().splitlines() or ["?"])[-1]
            ledger.finalize(tid, "failed", error=reason, params=sampled(config))


def _died(trial, ledger: Optional[Ledger] = None) -> str:
    """Why Ray says a trial ended in error when the trial could not say it itself: a memory kill gets
    "out of memory: peak X GB of Y GB available — ..." (automl/tune/oom.py), anything else the generic line."""
    from automl.tune.oom import looks_like_oom, reason_from_ray
    from automl.tune.events import trial_id_of

    text = ""
    with contextlib.suppress(Exception):  # Tune's error.txt in the trial's folder; best effort
        text = Path(trial.error_file).read_text() if trial.error_file else str(trial.get_error() or "")
    if looks_like_oom(text):
        progress = (ledger.progress(trial_id_of(trial.config)) if ledger is not None else None) or {}
        return reason_from_ray(text, progress)
    return ("the trial process died before reporting an error (killed, out of memory or crashed); see "
            + str(getattr(trial, "path", "") or ""))  # under <run_dir>/tune, kept (Ray's temp dir is not)


def _tolerate_worker_loss() -> None:
    """Ray Tune turns only actor and task errors into trial failures. A worker killed by Ray's memory
    monitor fails its task with ``OutOfMemoryError`` (a bare ``RayError``), on which Tune's actor manager
    raises "Caught unexpected exception" and the whole sweep dies. Such an error is handed on as what it
    is for the trial, the loss of its actor (the original text kept, so the driver can say "out of
    memory"): that one trial fails and the sweep goes on."""
    from ray.air.execution._internal import actor_manager
    from ray.exceptions import RayActorError, RayError, RayTaskError

    manager = actor_manager.RayActorManager
    if getattr(manager._actor_task_failed, "_automl_tolerant", False):
        return
    original = manager._actor_task_failed

    def _actor_task_failed(self, tracked_actor_task, exception):
        # OutOfMemoryError, WorkerCrashedError, NodeDiedError, ...: the worker is gone, whatever the cause
        if isinstance(exception, RayError) and not isinstance(exception, (RayActorError, RayTaskError)):
            exception = RayActorError(error_msg=f"{type(exception).__name__}: {exception}")
        return original(self, tracked_actor_task, exception)

    _actor_task_failed._automl_tolerant = True
    manager._actor_task_failed = _actor_task_failed


def hyperband_brackets(max_t: int, grace_period: int, reduction_factor: int) -> int:
    """HyperBand's bracket count s_max + 1, s_max = floor(log_eta(max_t / grace)) (Li et al. 2018)."""
    ratio = max(int(max_t), int(grace_period)) / max(1, int(grace_period))
    return int(math.floor(math.log(ratio, reduction_factor) + 1e-9)) + 1


def _scheduler(plan: LaunchPlan):
    from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler

    max_t = max(plan.max_t, plan.grace_period)
    if plan.scheduler == "asha":
        return AsyncHyperBandScheduler(time_attr="training_iteration", metric=plan.metric, mode=plan.mode,
                                       max_t=max_t, grace_period=plan.grace_period,
                                       reduction_factor=plan.reduction_factor)
    if plan.scheduler == "hyperband":
        # HyperBand's brackets run asynchronously (Li et al. 2020, "ASHA" paper, §3): Ray's synchronous
        # HyperBandScheduler *pauses* trials at each rung and restarts them from a Tune checkpoint; our
        # trials keep their state in the train action, not in Tune checkpoints, so a paused trial would
        # start again from scratch with a second MLflow run. The asynchronous brackets only ever stop.
        return AsyncHyperBandScheduler(time_attr="training_iteration", metric=plan.metric, mode=plan.mode,
                                       max_t=max_t, grace_period=plan.grace_period,
                                       reduction_factor=plan.reduction_factor,
                                       brackets=hyperband_brackets(max_t, plan.grace_period, plan.reduction_factor))
    return FIFOScheduler()


def run_tune(plan: LaunchPlan, space: SearchSpace, ctx: TrialContext, ledger: Ledger, attempt: int,
             printer=print, *, time_budget_s: Optional[float] = None, tick=None, progress=None) -> Tuple[int, bool]:
    """One Tune experiment for the remaining budget; returns (trials asked for, interrupted?).

    `time_budget_s`: what is left of the sweep's --time-budget (earlier attempts spent the rest);
    `tick()` is called at every trial event to book the elapsed time in the ledger; `progress()` returns
    the progress line (automl/tune/events.py prints it on each event and at least every 30 s)."""
    import optuna
    from ray import tune

    storage, todo = prepare_study(plan, space, ledger)
    if todo <= 0:
        return 0, False
    metric, mode = _searched(plan)
    search = _verdict_search()(space=DefineByRun(space), metric=metric, mode=mode,
                               sampler=_sampler(plan, attempt), storage=storage, study_name=STUDY_NAME)
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage)  # the driver tells verdicts through it
    _tolerate_worker_loss()
    # a data-parallel trial (automl/tune/data_parallel.py) only waits on its workers, whose CPUs/GPUs Ray Train
    # reserves as one placement group; the plan capped max_concurrent to the trials whose workers fit
    # (Ray refuses an all-zero request: the trial's own process asks for one MiB of memory, no CPU)
    resources = ({"cpu": 0, "gpu": 0, "memory": 2 ** 20} if getattr(plan, "workers_per_trial", 1) > 1
                 else {"cpu": plan.cpus_per_trial, "gpu": plan.gpus_per_trial})
    trainable = tune.with_resources(trial_trainable(ctx), resources)
    tuner = tune.Tuner(
        trainable,
        param_space={},  # what is searched lives in the searcher's define-by-run space
        tune_config=tune.TuneConfig(search_alg=search, scheduler=_scheduler(plan), num_samples=todo,
                                    max_concurrent_trials=plan.max_concurrent, time_budget_s=time_budget_s,
                                    reuse_actors=True),  # 4.4x less per-trial overhead (stack_facts §2b)
        run_config=tune.RunConfig(name=f"attempt-{attempt}", storage_path=str(Path(plan.run_dir) / "tune"),
                                  failure_config=tune.FailureConfig(max_failures=plan.max_failures),
                                  callbacks=[_ledger_callback(ledger, plan, study, printer, tick, progress)],
                                  verbose=0))
    interrupted = False
    tune_log = logging.getLogger("ray.tune.tune")
    tune_log.addFilter(_no_tuner_restore_hint)
    try:
        _record_errors(tuner.fit(), ledger)
    except (KeyboardInterrupt, SystemExit):  # a second Ctrl-C ends fit with KeyboardInterrupt; one returns
        interrupted = True
    finally:
        tune_log.removeFilter(_no_tuner_restore_hint)
    sync_study(study, ledger, plan.metric, goals=plan_goals(plan))  # e.g. a trial Ray aborted without telling
    return todo, interrupted


def _no_tuner_restore_hint(record) -> bool:
    """Tune's "Resume experiment with: Tuner.restore(...)" is the wrong advice here (it re-runs finished
    trials after a crash); the driver prints `automl run --resume` instead."""
    return "Tuner.restore" not in record.getMessage()
