"""The sweep launcher: the only module that imports Ray and Optuna (STYLE habit 8), both lazily.

``run_tune`` (called by automl/driver.py ``run_sweep``) runs the plan's remaining trials with Ray Tune:
what is searched is an Optuna define-by-run function (our distributions, relations applied at sample
time), how is ``TuneConfig`` (OptunaSearch + ASHA/HyperBand/FIFO, ``num_samples``,
``max_concurrent_trials``, ``time_budget_s``, ``reuse_actors``), where is ``RunConfig``
(``storage_path`` = the run folder, retries, our ledger callback).

Resuming does not use ``Tuner.restore``: after a SIGKILL its experiment state is stale and it re-runs
finished trials (stack_facts §3). The ledger (automl/ledger.py) is the truth instead: each attempt is a
fresh Tune experiment (``<run_dir>/tune/attempt-N``) whose Optuna study is pre-loaded with every finished
trial (same numbers, values, states), so TPE/GP keep their history, trial numbers stay unique, and only
the remaining budget runs.
"""
from __future__ import annotations

import contextlib
import hashlib
import itertools
import math
import os
import shutil
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

from automl.distributions import BoolDist, CategoricalDist, FloatDist, IntDist, PowerOfDist
from automl.launch import LaunchPlan
from automl.ledger import Ledger
from automl.space import SearchSpace
from automl.trial import INDEX_KEY, TRIAL_TAG, TrialContext, trial_dir

STUDY_NAME = "automl"
_SOCKET_ROOM = 40  # Ray appends up to ~64 chars (/session_<time>_<pid>/sockets/plasma_store); AF_UNIX stops at 107


# --- search space -> Optuna --------------------------------------------------------------------
def optuna_distribution(dist: Any):
    """Our distribution as an Optuna one. Optuna bounds are closed: open ends use the nearest float inside.

    Option weights of categorical fields are not honoured by Optuna's samplers (they model the
    objective, not a prior); the review notes it.
    """
    import optuna.distributions as od

    if isinstance(dist, FloatDist):
        return od.FloatDistribution(dist.closed_low, dist.closed_high, log=dist.log)
    if isinstance(dist, IntDist):
        return od.IntDistribution(dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, PowerOfDist):
        return od.CategoricalDistribution(list(dist.choices))
    if isinstance(dist, CategoricalDist):
        return od.CategoricalDistribution(list(dist.choices))
    if isinstance(dist, BoolDist):
        return od.CategoricalDistribution([False, True])
    raise TypeError(f"no Optuna distribution for {type(dist).__name__}; add one in automl/sweep.py")


class DefineByRun:
    """Optuna define-by-run space: parents first, each child's range narrowed by its `depends_on`.

    A plain class (not a closure) because OptunaSearch pickles its space with the searcher state.
    """

    def __init__(self, space: SearchSpace):
        self.params = dict(space.params)
        self.relations = {k: tuple(v) for k, v in space.relations.items()}

    def distributions(self, values: Mapping[str, Any]) -> Dict[str, Any]:
        """The Optuna distribution of every parameter given the (parent) values."""
        out = {}
        for name, dist in self.params.items():
            for rel in self.relations.get(name, ()):
                dist = dist.restricted(**rel.bounds(values[rel.parent]))
            out[name] = optuna_distribution(dist)
        return out

    def __call__(self, trial) -> Dict[str, Any]:
        values: Dict[str, Any] = {}
        for name, dist in self.params.items():
            for rel in self.relations.get(name, ()):
                dist = dist.restricted(**rel.bounds(values[rel.parent]))
            values[name] = _suggest(trial, name, dist)
        return {INDEX_KEY: trial.number}  # OptunaSearch merges this with the suggested values


def _suggest(trial, name: str, dist: Any) -> Any:
    # the public suggest_* calls: Ray's OptunaSearch records define-by-run values through them
    if isinstance(dist, FloatDist):
        return trial.suggest_float(name, dist.closed_low, dist.closed_high, log=dist.log)
    if isinstance(dist, IntDist):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, (PowerOfDist, CategoricalDist)):
        return trial.suggest_categorical(name, list(dist.choices))
    return trial.suggest_categorical(name, [False, True])


def grid_points(space: SearchSpace, per_float: int) -> Tuple[List[Dict[str, Any]], List[str]]:
    """Every combination that satisfies the relations (dropped ones are counted in the notes)."""
    axes = []
    for name, dist in space.items():
        if isinstance(dist, FloatDist):
            lo, hi = dist.closed_low, dist.closed_high
            if dist.log:
                values = [math.exp(math.log(lo) + i * (math.log(hi) - math.log(lo)) / (per_float - 1))
                          for i in range(per_float)]
            else:
                values = [lo + i * (hi - lo) / (per_float - 1) for i in range(per_float)]
            values = [min(max(v, lo), hi) for v in values]
        elif isinstance(dist, IntDist):
            values = list(range(dist.low, dist.high + 1, dist.step))
        elif isinstance(dist, (PowerOfDist, CategoricalDist)):
            values = list(dist.choices)
        else:
            values = [False, True]
        axes.append((name, values))
    points, dropped = [], 0
    for combo in itertools.product(*(v for _, v in axes)):
        point = dict(zip((n for n, _ in axes), combo))
        if space.problems(point):
            dropped += 1
        else:
            points.append(point)
    notes = [f"grid: {len(points)} point(s)" + (f", {dropped} dropped for violating depends_on" if dropped else "")]
    return points, notes


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
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    if name in ("random", "grid"):  # grid: the points are enqueued; the sampler is never consulted for them
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "bayesian":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=startup)
    raise ValueError(f"--algorithm {name!r} is unknown; use tpe, random, grid, bayesian or cmaes")


def preflight(plan: LaunchPlan) -> List[str]:
    """Problems that would stop the sweep before it starts (missing optional sampler packages)."""
    problems = []
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
    """An in-memory Optuna study holding every trial the ledger knows (numbers 0..max kept), plus, for
    grid, the points still to run enqueued. Returns (storage, number of trials this attempt runs)."""
    import optuna
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name=STUDY_NAME, sampler=optuna.samplers.RandomSampler(),
                                direction="minimize" if plan.mode == "min" else "maximize")
    space_fn = DefineByRun(space)
    known = {t["index"]: t for t in ledger.trials()}
    for index in range(max(known, default=-1) + 1):
        t = known.get(index)
        params = dict(t["params"]) if t else {}
        try:
            dists = space_fn.distributions(params) if params else {}
        except (KeyError, ValueError):
            params, dists = {}, {}
        if not t or t["status"] == "running" or t["interrupted"] or t["status"] == "failed" or t["metric"] is None:
            state, value = TrialState.FAIL, None  # a failure teaches the sampler nothing, never a 0
        elif t["status"] == "stopped":
            state, value = TrialState.PRUNED, None
        else:
            state, value = TrialState.COMPLETE, t["metric"]
        inter = {int(r["iteration"]): float(r[plan.metric]) for r in (t or {}).get("history", [])
                 if r.get(plan.metric) is not None}
        study.add_trial(create_trial(state=state, value=value, params=params, distributions=dists,
                                     intermediate_values=inter or None))
    done = len(ledger.counted())
    if plan.algorithm == "grid":
        points, _ = grid_points(space, plan.grid_points)
        finished = [t["params"] for t in ledger.counted()]
        todo = [p for p in points if p not in finished]
        for point in todo:
            study.enqueue_trial(point)
        return storage, len(todo)
    return storage, max(0, plan.num_samples - done)


# --- embedded Ray --------------------------------------------------------------------------------
def ray_temp_dir(run_dir: str | os.PathLike) -> Path:
    """Under the run folder when the path is short enough for Ray's unix sockets, else /tmp/sa-<hash>."""
    local = Path(run_dir) / "ray"
    if len(str(local)) <= _SOCKET_ROOM:
        return local
    return Path("/tmp") / f"sa-{hashlib.sha1(str(run_dir).encode()).hexdigest()[:10]}"


@contextlib.contextmanager
def ray_session(plan: LaunchPlan, *, log_to_driver: bool = False) -> Iterator[None]:
    """ray.init for this run (joining `plan.ray_address` when given) and a clean shutdown after.

    Embedded: num_cpus/num_gpus from this machine, no dashboard, session files in a short temp dir that
    is removed afterwards (Ray never deletes its /tmp/ray/session_* folders itself).
    """
    import ray

    # a stopped trial's thread still saves its checkpoint and closes its MLflow run before its actor can be
    # reused; Ray waits only 2 s by default and then *fails the next trial* ("reuse requires reset_config")
    env = {"TUNE_FUNCTION_THREAD_TIMEOUT_S": "120", "RAY_AIR_NEW_OUTPUT": "0"}
    for key, value in env.items():
        os.environ.setdefault(key, value)
    temp = None
    if plan.ray_address:
        ray.init(address=plan.ray_address, log_to_driver=log_to_driver, configure_logging=False,
                 runtime_env={"env_vars": {k: os.environ[k] for k in env}})
    else:
        temp = ray_temp_dir(plan.run_dir)
        temp.mkdir(parents=True, exist_ok=True)
        ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, _temp_dir=str(temp),
                 log_to_driver=log_to_driver, configure_logging=False,
                 _system_config={"enable_metrics_collection": False})
    try:
        yield
    finally:
        ray.shutdown()
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


# --- the driver-side ledger callback -----------------------------------------------------------------
def _ledger_callback(ledger: Ledger, plan: LaunchPlan, printer):
    from ray.tune import Callback

    from stereo.tracking import MlflowTracker, RunHandle

    class LedgerCallback(Callback):
        """Records each trial's verdict in the ledger (the trial process may be dead or stopped mid-step),
        closes its MLflow run if the trial could not, and prints one line per event."""

        def __init__(self):
            self.tracker = MlflowTracker(plan.tracking_uri) if plan.tracking_uri else None

        @staticmethod
        def _tid(trial) -> str:
            return f"t{int(trial.config.get(INDEX_KEY, -1)):04d}"

        def on_trial_start(self, iteration, trials, trial, **info):
            shown = ", ".join(f"{k.split('.')[-1]}={v:.4g}" if isinstance(v, float) else f"{k.split('.')[-1]}={v}"
                              for k, v in trial.config.items() if not k.startswith("_"))
            printer(f"trial {self._tid(trial)} started ({shown})")

        def on_trial_complete(self, iteration, trials, trial, **info):
            tid = self._tid(trial)
            progress = ledger.progress(tid) or {}
            # the scheduler also "stops" a trial at max_t, i.e. when its budget is spent: that is complete
            done = progress.get("outcome") == "completed" or len(progress.get("history") or []) >= plan.max_t
            self._close(tid, ledger.finalize(tid, "completed" if done else "stopped"), "FINISHED")

        def on_trial_error(self, iteration, trials, trial, **info):
            tid = self._tid(trial)
            progress = ledger.progress(tid) or {}
            reason = progress.get("error") or ("the trial process died before reporting an error (killed, "
                                               "out of memory or crashed); see " + str(trial.local_path or ""))
            self._close(tid, ledger.finalize(tid, "failed", error=reason, params=_params(trial.config)), "FAILED")

        def _close(self, tid: str, entry: Optional[dict], end_status: str):
            if entry is None:
                return
            metric = "n/a" if entry["metric"] is None else f"{entry['metric']:.4g}"
            printer(f"trial {tid} {entry['status']}: {plan.metric}={metric} after {entry['epochs']} "
                    f"validation(s)" + (f" ({entry['error']})" if entry["error"] else ""))
            if self.tracker is None:
                return
            try:
                for run in self.tracker.find_runs(plan.experiment, tags={TRIAL_TAG: tid}):
                    if run.status == "RUNNING" and run.run_id == entry["run_id"]:
                        self.tracker.end_run(RunHandle(run.run_id, run.experiment_id, run.name), end_status)
                if entry["run_id"]:
                    self.tracker.set_tags(RunHandle(entry["run_id"], "", tid),
                                          {"automl.status": entry["status"], **({"automl.error": entry["error"]}
                                                                                if entry["error"] else {})})
            except Exception as exc:  # noqa: BLE001 - tracking must never stop the sweep
                printer(f"warning: could not update the MLflow run of {tid}: {exc}")

    return LedgerCallback()


def _params(config: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in config.items() if not str(k).startswith("_")}


def _record_errors(results, ledger: Ledger) -> None:
    """Trials Ray aborted without telling callbacks (e.g. a failed actor reuse) still get their verdict."""
    for result in results:
        config = result.config or {}
        if result.error is None or INDEX_KEY not in config:
            continue
        tid = f"t{int(config[INDEX_KEY]):04d}"
        if not ledger.is_final(tid):
            reason = (ledger.progress(tid) or {}).get("error") or (str(result.error).strip().splitlines() or ["?"])[-1]
            ledger.finalize(tid, "failed", error=reason, params=_params(config))


def _trainable(config: Dict[str, Any], ctx: TrialContext) -> None:
    """What Ray runs in a worker: the Ray-free trial with Ray's reporter."""
    import ray
    from ray import tune

    from automl.trial import run_trial

    run_trial(config, ctx, tune.report, node=ray.get_runtime_context().get_node_id())


def _scheduler(plan: LaunchPlan):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler

    if plan.scheduler == "asha":
        return ASHAScheduler(time_attr="training_iteration", metric=plan.metric, mode=plan.mode,
                             max_t=max(plan.max_t, plan.grace_period), grace_period=plan.grace_period,
                             reduction_factor=plan.reduction_factor)
    if plan.scheduler == "hyperband":
        return HyperBandScheduler(time_attr="training_iteration", metric=plan.metric, mode=plan.mode,
                                  max_t=plan.max_t, reduction_factor=plan.reduction_factor)
    return FIFOScheduler()


def run_tune(plan: LaunchPlan, space: SearchSpace, ctx: TrialContext, ledger: Ledger, attempt: int,
             printer=print) -> Tuple[int, bool]:
    """One Tune experiment for the remaining budget; returns (trials asked for, interrupted?)."""
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    storage, todo = prepare_study(plan, space, ledger)
    if todo <= 0:
        return 0, False
    search = OptunaSearch(space=DefineByRun(space), metric=plan.metric, mode=plan.mode, sampler=_sampler(plan, attempt),
                          storage=storage, study_name=STUDY_NAME)
    trainable = tune.with_resources(tune.with_parameters(_trainable, ctx=ctx),
                                    {"cpu": plan.cpus_per_trial, "gpu": plan.gpus_per_trial})
    tuner = tune.Tuner(
        trainable,
        param_space={},  # what is searched lives in the searcher's define-by-run space
        tune_config=tune.TuneConfig(search_alg=search, scheduler=_scheduler(plan), num_samples=todo,
                                    max_concurrent_trials=plan.max_concurrent, time_budget_s=plan.time_budget_s,
                                    reuse_actors=True),  # 4.4x less per-trial overhead (stack_facts §2b)
        run_config=tune.RunConfig(name=f"attempt-{attempt}", storage_path=str(Path(plan.run_dir) / "tune"),
                                  failure_config=tune.FailureConfig(max_failures=plan.max_failures),
                                  callbacks=[_ledger_callback(ledger, plan, printer)], verbose=0))
    interrupted = False
    try:
        _record_errors(tuner.fit(), ledger)
    except (KeyboardInterrupt, SystemExit):  # SIGTERM ends fit with SystemExit; SIGINT usually returns
        interrupted = True
    return todo, interrupted


def trial_context(plan: LaunchPlan, parent_run_id: Optional[str]) -> TrialContext:
    return TrialContext(run_dir=plan.run_dir, base_spec=plan.base_spec, metric=plan.metric, mode=plan.mode,
                        tracking_uri=plan.tracking_uri, experiment=plan.experiment, parent_run_id=parent_run_id,
                        cpus_per_trial=plan.cpus_per_trial, sweep_name=Path(plan.run_dir).name)


def trial_spec_path(run_dir: str | os.PathLike, trial_id: str) -> Path:
    return trial_dir(run_dir, trial_id) / "train" / "experiment.yaml"

