"""A trial's folder and MLflow runs: the tag names, the trial folder and its best checkpoint, the tracker a
trial logs through (:class:`TaggingTracker`), and ending a trial's runs with its outcome
(:func:`end_trial_runs`, used by the trial on a retry and by the driver's events). Ray-free."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from automl.tune.ledger import best_key
from stereo.tracking import MlflowTracker

INDEX_KEY = "_index"  # the Optuna trial number, added to every suggested config by automl/tune/backend.py
TRIAL_TAG, SWEEP_TAG, ATTEMPT_TAG = "automl.trial_id", "automl.sweep", "automl.attempt"
SAMPLED_TAG = "automl.sampled"  # JSON list of the sampled keys; their values are params under the same names


def trial_dir(run_dir: str | os.PathLike, trial_id: str) -> Path:
    return Path(run_dir) / "trials" / trial_id


def best_checkpoint_on_disk(run_dir: str | os.PathLike, trial_id: str) -> Optional[str]:
    """The trial's ``dn_model_best`` (the train action's layout), if it has validated at least once."""
    best = trial_dir(run_dir, trial_id) / "train" / "dn_model_best.safetensors"
    return str(best) if best.is_file() else None


#: besides the sampled keys, the spec fields a trial run logs as params (when the spec has them): what a
#: reader of the runs table needs to tell sweeps apart. The whole resolved spec is the run's
#: experiment.yaml artifact (every key of every trial also sits in <run_dir>/trials/<id>/train/).
SPEC_ARTIFACT = "resolved_spec.json"
KEY_SPEC_FIELDS = ("model.model_type", "model.encoder", "dataset.train_dataset.batch_size", "train.num_epochs",
                   "train.max_steps", "train.optim.optimizer", "train.seed")


class TaggingTracker(MlflowTracker):
    """MlflowTracker that tags the trial's run and tells the ledger its id the moment it exists,
    so the driver can close the run even if this process is killed. Of the spec it logs as params only
    the sampled keys and :data:`KEY_SPEC_FIELDS`, so that what differs between trials is what the UI shows
    (364 flattened spec keys would bury them)."""

    def __init__(self, uri: str, tags: Mapping[str, str], on_start: Callable[[str], None],
                 sampled: tuple = ()):
        super().__init__(uri)
        self._extra, self._on_start, self._sampled = dict(tags), on_start, tuple(sampled)

    def log_params(self, run, params):
        from stereo.config.secrets import redact
        from stereo.tracking import flatten_dict

        flat = flatten_dict(params)
        logged = super().log_params(run, {k: flat[k] for k in (*self._sampled, *KEY_SPEC_FIELDS) if k in flat})
        # the whole resolved spec, at once (experiment.yaml only arrives when the run ends, if it does)
        self.client.log_dict(run.run_id, redact(dict(params)), SPEC_ARTIFACT)
        return logged

    def start_run(self, name, *, experiment, tags=None, parent_run_id=None):
        handle = super().start_run(name, experiment=experiment, tags={**(tags or {}), **self._extra},
                                   parent_run_id=parent_run_id)
        self._on_start(handle.run_id)
        return handle


def _attempt(run) -> int:
    return int(run.tags.get(ATTEMPT_TAG, "1") or 1)


def end_trial_runs(tracker, experiment: str, entry: Mapping[str, Any], status: str,
                   tags: Optional[Mapping[str, str]] = None, *, up_to_attempt: Optional[int] = None,
                   metric: Optional[str] = None) -> None:
    """End the RUNNING runs of trial ``entry['trial_id']``.

    Final (``up_to_attempt=None``): the verdict's run (``entry['run_id']``, else the latest attempt's) ends
    with `status` (a completed trial's run reads FINISHED even if the scheduler's stop closed it KILLED)
    and gets `tags`; the others end FAILED, tagged ``automl.status=retried``. A retry
    (``up_to_attempt=n``): attempts up to n end FAILED and are tagged retried; the retry's run is left alone.
    With `metric` (only when no trial process is alive, or it could log them a second time), a scored
    verdict run that lacks the value it is ranked by gets ``best/val/<metric>`` and ``best/step``, and one
    without its logged model (tag ``model_id``) gets its best checkpoint logged as one.
    """
    from stereo.tracking import RunHandle

    runs = [r for r in tracker.find_runs(experiment, tags={TRIAL_TAG: entry["trial_id"]})
            if up_to_attempt is None or _attempt(r) <= up_to_attempt]
    newest = None
    if up_to_attempt is None and runs:
        ids = {r.run_id for r in runs}
        newest = entry.get("run_id") if entry.get("run_id") in ids else max(runs, key=_attempt).run_id
    for run in runs:
        handle = RunHandle(run.run_id, run.experiment_id, run.name)
        final = run.run_id == newest
        if run.status == "RUNNING":
            tracker.end_run(handle, status if final else "FAILED")
        elif final and run.status != status:
            # the verdict decides: e.g. a trial that trained its whole budget, but whose process was ended
            # while it closed its run (KILLED), is FINISHED
            tracker.end_run(handle, status)
        if final:
            tracker.set_tags(handle, dict(tags or {}))
            key = best_key(metric) if metric else None
            if key and entry.get("metric") is not None and key not in run.metrics and status == "FINISHED":
                step = int(entry.get("best_step") or 0)
                tracker.log_metrics(handle, {key: float(entry["metric"]), "best/step": step}, step=step)
            if key and status == "FINISHED" and entry.get("checkpoint") and "model_id" not in run.tags:
                # its process was ended before it logged its best checkpoint as a model (the Models column)
                model_id = tracker.log_model(handle, str(entry["checkpoint"]), name=entry["trial_id"],
                                             step=int(entry.get("best_step") or 0))
                tracker.set_tags(handle, {"model_id": model_id})
        elif run.tags.get("automl.status") is None:
            tracker.set_tags(handle, {"automl.status": "retried"})
