"""An in-process tracker with MLflow's semantics, for unit tests and dry runs (no files, no imports)."""
from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from stereo.tracking.base import PARENT_RUN_TAG, RUN_NAME_TAG, RunHandle, RunRecord, Tracker


@dataclass
class _Run:
    handle: RunHandle
    status: str = "RUNNING"
    order: int = 0
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # key → [(step, value)]
    artifacts: list[str] = field(default_factory=list)  # artifact-relative paths
    datasets: list[tuple[str, str]] = field(default_factory=list)  # (context, absolute path)
    models: list[str] = field(default_factory=list)  # checkpoint paths logged as models


class MemoryTracker(Tracker):
    """Keeps every run in dicts; ``runs``/``history``/``artifacts`` let tests look inside."""

    def __init__(self) -> None:
        self.experiments: dict[str, str] = {}  # name → id
        self.experiment_tags: dict[str, dict[str, str]] = {}  # name → tags
        self.runs: dict[str, _Run] = {}
        self._order = itertools.count()

    def start_run(self, name, *, experiment, tags=None, parent_run_id=None) -> RunHandle:
        if not experiment:
            raise ValueError("experiment name must be non-empty, e.g. 'depth_net'")
        if parent_run_id is not None and parent_run_id not in self.runs:
            raise ValueError(f"parent run {parent_run_id!r} does not exist; start the parent run first")
        exp_id = self.experiments.setdefault(experiment, str(len(self.experiments)))
        handle = RunHandle(uuid.uuid4().hex, exp_id, name, parent_run_id)
        self.runs[handle.run_id] = _Run(handle, order=next(self._order))
        all_tags = {RUN_NAME_TAG: name, **(tags or {})}
        if parent_run_id is not None:
            all_tags[PARENT_RUN_TAG] = parent_run_id
        self.set_tags(handle, all_tags)
        return handle

    def _get(self, run: RunHandle) -> _Run:
        try:
            return self.runs[run.run_id]
        except KeyError:
            raise ValueError(f"run {run.run_id!r} was not started by this tracker") from None

    def _log_param_batch(self, run, params) -> None:
        stored = self._get(run).params
        for k, v in params.items():
            if k in stored and stored[k] != v:
                raise ValueError(f"param {k!r} already logged as {stored[k]!r}; cannot change it to {v!r} "
                                 "(params are immutable; log a metric or tag instead)")
        stored.update(params)

    def _log_metric_batch(self, run, metrics, step) -> None:
        history = self._get(run).history
        for k, v in metrics.items():
            history.setdefault(k, []).append((step, v))

    def _set_tag_batch(self, run, tags) -> None:
        self._get(run).tags.update(tags)

    def log_artifact(self, run, path, artifact_path=None) -> None:
        if not os.path.exists(path):
            raise FileNotFoundError(f"artifact {path!r} does not exist; write it before logging it")
        name = os.path.basename(os.path.normpath(path))
        self._get(run).artifacts.append(f"{artifact_path}/{name}" if artifact_path else name)

    def set_experiment_tags(self, experiment, tags) -> None:
        self.experiments.setdefault(experiment, str(len(self.experiments)))
        self.experiment_tags.setdefault(experiment, {}).update({k: str(v) for k, v in tags.items()})

    def log_datasets(self, run, files) -> None:
        for context, paths in files.items():
            for path in paths:
                if not os.path.isfile(path):
                    raise FileNotFoundError(f"dataset file {path!r} does not exist")
                self._get(run).datasets.append((context, os.path.abspath(path)))

    def log_model(self, run, checkpoint, *, name, step=0, params=None) -> str:
        if not os.path.isfile(checkpoint):
            raise FileNotFoundError(f"checkpoint {checkpoint!r} does not exist; log a model after it is written")
        self._get(run).models.append(str(checkpoint))
        return f"m-{uuid.uuid4().hex}"

    def _terminate(self, run, status) -> None:
        self._get(run).status = status

    def find_runs(self, experiment, tags: Mapping[str, str] | None = None, status=None) -> list[RunRecord]:
        exp_id = self.experiments.get(experiment)
        found = [r for r in self.runs.values() if r.handle.experiment_id == exp_id
                 and all(r.tags.get(k) == str(v) for k, v in (tags or {}).items())
                 and (status is None or r.status == status)]
        found.sort(key=lambda r: r.order, reverse=True)
        return [self.record(r.handle.run_id) for r in found]

    # --- inspection helpers for tests ------------------------------------------------------------
    def record(self, run_id: str) -> RunRecord:
        r = self.runs[run_id]
        # "latest" means highest step, as MLflow reports it (ties: the later write).
        latest = {k: max(enumerate(h), key=lambda iv: (iv[1][0], iv[0]))[1][1] for k, h in r.history.items()}
        return RunRecord(r.handle.run_id, r.handle.experiment_id, r.handle.name, r.status,
                         dict(r.params), latest, dict(r.tags))

    def history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        return list(self.runs[run_id].history.get(key, []))

    def artifacts(self, run_id: str) -> list[str]:
        return list(self.runs[run_id].artifacts)

    def datasets(self, run_id: str) -> list[tuple[str, str]]:
        return list(self.runs[run_id].datasets)

    def models(self, run_id: str) -> list[str]:
        return list(self.runs[run_id].models)
