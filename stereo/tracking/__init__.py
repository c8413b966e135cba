"""Experiment tracking behind a small interface: MemoryTracker for tests, MlflowTracker for real runs."""
from stereo.tracking.base import (
                                  NOTE_TAG,
                                  PARENT_RUN_TAG,
                                  RunHandle,
                                  RunRecord,
                                  Tracker,
                                  check_key,
                                  flatten_dict,
                                  stringify,
)
from stereo.tracking.memory import MemoryTracker
from stereo.tracking.mlflow_tracker import (
                                  EXPERIMENT_KIND_TAG,
                                  TRAINING_KIND,
                                  MlflowTracker,
                                  artifact_root,
                                  check_tracking_uri,
                                  default_tracker,
                                  default_tracking_uri,
                                  ensure_experiment,
                                  sqlite_path,
)

__all__ = [
                                  "EXPERIMENT_KIND_TAG",
                                  "NOTE_TAG",
                                  "TRAINING_KIND",
                                  "PARENT_RUN_TAG",
                                  "MemoryTracker",
                                  "MlflowTracker",
                                  "RunHandle",
                                  "RunRecord",
                                  "Tracker",
                                  "artifact_root",
                                  "check_key",
                                  "check_tracking_uri",
                                  "default_tracker",
                                  "default_tracking_uri",
                                  "ensure_experiment",
                                  "flatten_dict",
                                  "sqlite_path",
                                  "stringify",
]
