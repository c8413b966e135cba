"""A data-parallel trial (``train.num_gpus: N > 1``): N Ray Train workers run DDP, reporting like one trial.

The Tune trial (automl/tune/trainable.py) runs :func:`run_data_parallel_trial` instead of ``run_trial``: it
starts Ray Train's ``TorchTrainer`` with N workers (``ScalingConfig``: one GPU each on GPUs, else
automl/plan/resources.py's CPUs per worker; Ray Train reserves them as one placement group and sets up the
process group: nccl on GPUs, gloo on CPUs). Each worker builds the same trial spec and trains it with the
train action; Lightning runs in the processes Ray made (Ray's ``RayDDPStrategy`` and ``RayLightningEnvironment``
through ``stereo.training.trainer.external_processes``), DistributedSampler splitting each epoch between them.

Rank 0 *is* the trial of a 1-worker run (``run_trial``: ledger, status.json, checkpoints, the one MLflow run,
the reporter); the others train without records. Rank 0's reports cross to the Tune trial through a small
actor (:class:`_Channel`): the trial hands each to ``tune.report`` and answers whether the scheduler stopped
it, so a stop reaches rank 0's reporter exactly as ``SystemExit`` out of ``report`` does in a 1-worker trial;
every rank then agrees on ``trainer.should_stop`` at the end of the epoch (:func:`stop_sync_class`), so no
rank is left waiting in an all-reduce. A sweep being stopped (Ctrl-C) is passed on the same way.
"""
from __future__ import annotations

import dataclasses
import functools
import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional

from automl.plan.resources import cpus_per_worker
from automl.tune.ledger import Ledger, trial_id_for
from automl.tune.reporter import TrialFailure
from automl.tune.trial import TrialContext, run_trial, split_config, trial_raw_spec
from automl.tune.trial_runs import trial_dir

POLL_S = 0.5  # how often the trial looks for rank 0's reports and for the end of the training
INTERRUPT_POLL_S = 1.0  # how often rank 0 asks whether the sweep is being stopped


class _Channel:
    """Rank 0 -> the Tune trial: each report and the trial's answer (stop or go on); a threaded Ray actor."""

    def __init__(self):
        self._reports: "queue.Queue" = queue.Queue()
        self._answers: Dict[int, bool] = {}
        self._cond = threading.Condition()
        self._seq = 0
        self._interrupted = False

    def report(self, metrics: Dict[str, Any]) -> bool:
        """Called by rank 0; blocks until the trial answered. True: stop."""
        with self._cond:
            self._seq += 1
            seq = self._seq
        self._reports.put((seq, metrics))
        with self._cond:
            self._cond.wait_for(lambda: seq in self._answers or self._interrupted)
            return self._answers.pop(seq, True)

    def next(self, timeout: float):
        try:
            return self._reports.get(timeout=timeout)
        except queue.Empty:
            return None

    def answer(self, seq: int, stop: bool) -> None:
        with self._cond:
            self._answers[seq] = bool(stop)
            self._cond.notify_all()

    def interrupt(self) -> None:
        with self._cond:
            self._interrupted = True
            self._cond.notify_all()

    def interrupted(self) -> bool:
        return self._interrupted


@functools.lru_cache(maxsize=1)
def stop_sync_class():
    """A Lightning callback on every rank, after the reporter: at each epoch's end all ranks stop if any
    asked to (rank 0's reporter, on the scheduler's stop), so none waits alone in the next all-reduce."""
    import pytorch_lightning as pl

    class StopSync(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            trainer.should_stop = bool(trainer.strategy.reduce_boolean_decision(bool(trainer.should_stop),
                                                                                 all=False))

    return StopSync


def _ray_settings(*, cuda: bool, find_unused_parameters: bool) -> Dict[str, Any]:
    """Trainer keyword arguments in a Ray Train worker: Ray made the processes and the process group."""
    from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment

    return {"strategy": RayDDPStrategy(find_unused_parameters=find_unused_parameters,
                                       process_group_backend="nccl" if cuda else "gloo"),
            "plugins": [RayLightningEnvironment()], "devices": "auto", "num_nodes": 1}


def _worker_loop(cfg: Dict[str, Any]) -> None:
    """What each Ray Train worker runs: the same trial spec, rank 0 with the trial's records."""
    import ray
    import ray.train

    from stereo.training.trainer import external_processes

    ctx: TrialContext = cfg["ctx"]
    config, channel = cfg["config"], cfg["channel"]
    external_processes(_ray_settings)
    sync = stop_sync_class()()
    one = dataclasses.replace(ctx, cpus_per_trial=cpus_per_worker(ctx.cpus_per_trial, ctx.workers), workers=1)
    if ray.train.get_context().get_world_rank() != 0:
        _follow_trial(config, one, [sync])
        return

    def report(metrics: Dict[str, Any]) -> None:
        if ray.get(channel.report.remote(metrics)):
            raise SystemExit(0)  # as Ray's tune.report does on a stop

    asked = {"at": 0.0, "value": False}

    def stop_requested() -> bool:
        now = time.monotonic()
        if not asked["value"] and now - asked["at"] >= INTERRUPT_POLL_S:
            asked["at"], asked["value"] = now, bool(ray.get(channel.interrupted.remote()))
        return asked["value"]

    run_trial(config, one, report, node=cfg.get("node"), stop_requested=stop_requested, callbacks=[sync])


def _follow_trial(config: Mapping[str, Any], ctx: TrialContext, callbacks) -> None:
    """A rank other than 0: the trial's spec trained with no records (the train action leaves status.json,
    the tracker and the checkpoints to rank 0)."""
    import torch

    from stereo.actions.train import train
    from stereo.config.load import load_spec

    torch.set_num_threads(max(1, int(ctx.cpus_per_trial)))
    index, params = split_config(config)
    raw = trial_raw_spec(ctx.base_spec, params, str(trial_dir(ctx.run_dir, trial_id_for(index))))
    monitor, mode = ((ctx.deploy["monitor"], ctx.deploy["monitor_mode"]) if ctx.deploy else (ctx.metric, ctx.mode))
    train(load_spec(raw, action="train"), tracker=False, callbacks=callbacks, monitor=monitor, monitor_mode=mode)


def run_data_parallel_trial(config: Mapping[str, Any], ctx: TrialContext, report: Callable[[Dict[str, Any]], None],
                            node: Optional[str] = None,
                            stop_requested: Optional[Callable[[], bool]] = None) -> Dict[str, Any]:
    """``run_trial`` for ``ctx.workers > 1`` workers; same reports, ledger entry and failures."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    index, _ = split_config(config)
    trial_id = trial_id_for(index)
    channel = ray.remote(num_cpus=0, max_concurrency=16)(_Channel).remote()
    per_worker: Dict[str, float] = {"CPU": cpus_per_worker(ctx.cpus_per_trial, ctx.workers)}
    if ctx.use_gpu:
        per_worker["GPU"] = 1.0
    trainer = TorchTrainer(
        _worker_loop, train_loop_config={"config": dict(config), "ctx": ctx, "channel": channel, "node": node},
        scaling_config=ScalingConfig(num_workers=int(ctx.workers), use_gpu=bool(ctx.use_gpu),
                                     resources_per_worker=per_worker),
        torch_config=TorchConfig(backend="nccl" if ctx.use_gpu else "gloo"),
        run_config=RunConfig(name=f"{trial_id}-{time.time_ns()}",
                             storage_path=str(Path(ctx.run_dir) / "tune" / "workers")))
    outcome: Dict[str, Any] = {}

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as exc:  # noqa: BLE001 - handed to the trial's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=fit, name=f"{trial_id}-workers", daemon=True)
    thread.start()
    interrupted = False
    while True:
        item = ray.get(channel.next.remote(POLL_S))
        if item is not None:
            seq, metrics = item
            try:
                report(metrics)
                stop = False
            except SystemExit:
                stop = True
            channel.answer.remote(seq, stop)
            continue
        if not thread.is_alive():
            break
        if not interrupted and stop_requested is not None and stop_requested():
            interrupted = True
            channel.interrupt.remote()
    thread.join()
    ray.kill(channel)
    ledger = Ledger(ctx.run_dir, metric=ctx.metric, mode=ctx.mode)
    progress = ledger.progress(trial_id) or {}
    if "error" in outcome:
        if progress.get("outcome") == "interrupted":
            raise SystemExit(0)
        reason = progress.get("error") or _worker_error(outcome["error"])
        if progress.get("outcome") != "failed":
            ledger.update_progress(trial_id, outcome="failed", error=reason, ended=time.time())
        raise TrialFailure(reason)
    return ledger.trial(trial_id)


def _worker_error(exc: BaseException) -> str:
    """The last meaningful line of a Ray Train failure (the worker's own exception is inside its text)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return f"data-parallel workers failed: {lines[-1] if lines else type(exc).__name__}"
