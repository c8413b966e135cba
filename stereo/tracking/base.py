"""The tracking interface: a handful of calls every experiment tracker implements.

Implementations: :class:`~stereo.tracking.memory.MemoryTracker` (unit tests) and
:class:`~stereo.tracking.mlflow_tracker.MlflowTracker`. The base class owns the MLflow-compatible rules
(key characters and lengths, value truncation, batches of ≤ 100 params, immutable params), so a test
written against the memory tracker holds for MLflow too.

Runs nest across processes through the ``mlflow.parentRunId`` tag rather than a client-side run stack,
so a trial started in a worker can be attached to a sweep run created in the driver.
"""
from __future__ import annotations

import abc
import contextlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PARENT_RUN_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
NOTE_TAG = "mlflow.note.content"  # the run's description (markdown) in MLflow's UI
RUN_STATUSES = ("RUNNING", "FINISHED", "FAILED", "KILLED")
END_STATUSES = ("FINISHED", "FAILED", "KILLED")

# MLflow 3.x limits (mlflow/utils/validation.py): exceeding them makes log_batch raise or truncate.
MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
_KEY_RE = re.compile(r"^[/\w.\- :]*$")


@dataclass(frozen=True)
class RunHandle:
    """What a caller needs to keep logging into a run (picklable: it can cross into a worker)."""
    run_id: str
    experiment_id: str
    name: str
    parent_run_id: str | None = None


@dataclass
class RunRecord:
    """A run as read back by :meth:`Tracker.find_runs` (metrics hold each key's latest value)."""
    run_id: str
    experiment_id: str
    name: str
    status: str
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def parent_run_id(self) -> str | None:
        return self.tags.get(PARENT_RUN_TAG)


def flatten_dict(spec: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """{'a': {'b': {'c': 1}}} → {'a.b.c': 1}. Lists of dicts are indexed ('a.0.b'); other lists stay."""
    out: dict[str, Any] = {}
    for key, value in spec.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            if value:
                out.update(flatten_dict(value, name, sep))
            else:
                out[name] = {}
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, Mapping) for v in value):
            for i, item in enumerate(value):
                out.update(flatten_dict(item, f"{name}{sep}{i}", sep))
        else:
            out[name] = value
    return out


def stringify(value: Any) -> str:
    """Param text: containers as JSON (stable, readable), everything else via str()."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str)
    return str(value)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_key(key: str, what: str) -> str:
    """Raise unless `key` is a legal MLflow param/metric/tag key."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"{what} key must be a non-empty string, got {key!r}")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"{what} key {key[:40]!r}... is {len(key)} characters; MLflow allows {MAX_KEY_LENGTH}")
    if not _KEY_RE.match(key) or key.startswith("/") or ".." in key.split("/") or "//" in key:
        raise ValueError(f"{what} key {key!r} is not allowed: use letters, digits, _ - . : space and single "
                         "'/' between parts (e.g. 'val/epe')")
    return key


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


class Tracker(abc.ABC):
    """Base class: subclasses implement the storage calls; the rules live here."""

    # --- implemented by subclasses -------------------------------------------------------------
    @abc.abstractmethod
    def start_run(self, name: str, *, experiment: str, tags: Mapping[str, str] | None = None,
                  parent_run_id: str | None = None) -> RunHandle:
        """Create a RUNNING run in `experiment` (created if missing), nested under `parent_run_id`."""

    @abc.abstractmethod
    def _log_param_batch(self, run: RunHandle, params: dict[str, str]) -> None:
        """Store ≤ MAX_PARAMS_PER_BATCH already checked, stringified, truncated params."""

    @abc.abstractmethod
    def _log_metric_batch(self, run: RunHandle, metrics: dict[str, float], step: int) -> None:
        """Store ≤ MAX_METRICS_PER_BATCH checked float metrics at `step`."""

    @abc.abstractmethod
    def _set_tag_batch(self, run: RunHandle, tags: dict[str, str]) -> None:
        """Store ≤ MAX_PARAMS_PER_BATCH checked, truncated tags."""

    @abc.abstractmethod
    def log_artifact(self, run: RunHandle, path: str, artifact_path: str | None = None) -> None:
        """Copy the file or directory at `path` into the run's artifacts (under `artifact_path`)."""

    @abc.abstractmethod
    def set_experiment_tags(self, experiment: str, tags: Mapping[str, str]) -> None:
        """Tag `experiment` (created if missing), e.g. a saved view of the UI (automl/ui/links.py)."""

    @abc.abstractmethod
    def log_datasets(self, run: RunHandle, files: Mapping[str, Sequence[str]]) -> None:
        """Record annotation files as the run's dataset inputs: ``{"train": [path, ...], "val": [...]}``
        (name, digest, line count; stereo/tracking/mlflow_datasets.py). A missing file raises."""

    @abc.abstractmethod
    def log_model(self, run: RunHandle, checkpoint: str, *, name: str, step: int = 0,
                  params: Mapping[str, Any] | None = None) -> str:
        """Log `checkpoint` (+ its JSON sidecar) as a model output of the run; returns the model id
        (stereo/tracking/mlflow_models.py: a pyfunc that loads back and predicts)."""

    def system_metrics(self, run: RunHandle) -> contextlib.AbstractContextManager:
        """While the context is open, sample the machine (CPU, memory, GPU) into `run` (a no-op here; the
        MLflow tracker logs MLflow's ``system/*`` metrics)."""
        return contextlib.nullcontext()

    @abc.abstractmethod
    def _terminate(self, run: RunHandle, status: str) -> None:
        """Mark the run ended with `status` (one of END_STATUSES)."""

    @abc.abstractmethod
    def find_runs(self, experiment: str, tags: Mapping[str, str] | None = None,
                  status: str | None = None) -> list[RunRecord]:
        """Runs of `experiment` whose tags equal every item of `tags` (and with `status`), newest first.

        An unknown experiment gives []. Use it to find e.g. the training run of a checkpoint hash, or
        RUNNING leftovers of a killed sweep.
        """

    # --- shared rules ----------------------------------------------------------------------------
    def log_params(self, run: RunHandle, params: Mapping[str, Any]) -> dict[str, str]:
        """Flatten, stringify and truncate `params`, then log them in batches; returns what was logged.

        Params are immutable, as in MLflow: logging a key again with another value raises. Secret fields
        (`encryption_key`, `*_key`, `*token*`, `*password*`: stereo.config.secrets) are logged redacted.
        """
        from stereo.config.secrets import redact_flat

        flat = {check_key(k, "param"): _truncate(stringify(v), MAX_PARAM_VALUE_LENGTH)
                for k, v in redact_flat(flatten_dict(params)).items()}
        for batch in _chunks(list(flat.items()), MAX_PARAMS_PER_BATCH):
            self._log_param_batch(run, dict(batch))
        return flat

    def log_metrics(self, run: RunHandle, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log numeric metrics at `step` (default 0). NaN/inf are stored as such, never replaced by 0."""
        clean: dict[str, float] = {}
        for k, v in metrics.items():
            check_key(k, "metric")
            if isinstance(v, bool) or not hasattr(v, "__float__"):
                raise TypeError(f"metric {k!r} must be a number, got {type(v).__name__} {v!r}")
            clean[k] = float(v)  # works for python, numpy and 0-d torch scalars
        step = 0 if step is None else int(step)
        for batch in _chunks(list(clean.items()), MAX_METRICS_PER_BATCH):
            self._log_metric_batch(run, dict(batch), step)

    def set_tags(self, run: RunHandle, tags: Mapping[str, Any]) -> None:
        clean = {check_key(k, "tag"): _truncate(str(v), MAX_TAG_VALUE_LENGTH) for k, v in tags.items()}
        for batch in _chunks(list(clean.items()), MAX_PARAMS_PER_BATCH):
            self._set_tag_batch(run, dict(batch))

    def set_note(self, run: RunHandle, markdown: str) -> None:
        """The run's description in MLflow's UI (markdown)."""
        self.set_tags(run, {NOTE_TAG: markdown})

    def end_run(self, run: RunHandle, status: str = "FINISHED") -> None:
        if status not in END_STATUSES:
            raise ValueError(f"end status {status!r} is not one of {END_STATUSES}")
        self._terminate(run, status)

    @contextlib.contextmanager
    def run(self, name: str, *, experiment: str, tags: Mapping[str, str] | None = None,
            parent_run_id: str | None = None) -> Iterator[RunHandle]:
        """``with tracker.run(...) as run:`` ends FINISHED, FAILED on an exception, KILLED on Ctrl-C."""
        handle = self.start_run(name, experiment=experiment, tags=tags, parent_run_id=parent_run_id)
        try:
            yield handle
        except (KeyboardInterrupt, SystemExit):
            self.end_run(handle, "KILLED")
            raise
        except BaseException:
            self.end_run(handle, "FAILED")
            raise
        self.end_run(handle, "FINISHED")

