"""The data sets an action's tracker run records as dataset inputs (MLflow's "Dataset" column).

Only the splits the action reads (stereo.actions.preflight.ACTION_SPLITS: train reads train + val,
evaluate test, inference infer), each source's annotation file, tagged with its split. Recording them
never stops an action: a problem is a warning.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any


def spec_datasets(action: str, spec: Mapping[str, Any]) -> dict[str, list[str]]:
    """{split: [annotation files]} that `action` reads in the (nested, plain) spec."""
    from stereo.actions.preflight import ACTION_SPLITS

    dataset = spec.get("dataset") if isinstance(spec, Mapping) else None
    out: dict[str, list[str]] = {}
    for split in ACTION_SPLITS.get(action, ()):
        section = dataset.get(f"{split}_dataset") if isinstance(dataset, Mapping) else None
        sources = section.get("data_sources") if isinstance(section, Mapping) else None
        files = [str(s["data_file"]) for s in sources or () if isinstance(s, Mapping) and s.get("data_file")]
        if files:
            out[split] = files
    return out


def log_spec_datasets(tracker: Any, run: Any, action: str, spec: Mapping[str, Any]) -> None:
    files = spec_datasets(action, spec)
    if not files:
        return
    try:
        tracker.log_datasets(run, files)
    except Exception as exc:  # noqa: BLE001 - the record of the inputs must not stop the action
        warnings.warn(f"could not record the {action} data sets in the tracker: {type(exc).__name__}: {exc}",
                      RuntimeWarning, stacklevel=2)
