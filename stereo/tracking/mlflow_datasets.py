"""Annotation files as MLflow dataset inputs: the runs table's "Dataset" column and the run's Inputs.

An annotation file (one sample per line) is recorded by reference, never copied: its name, a content
digest (first 16 hex of SHA-256), where it is (``file://`` URI), its line count (the dataset's profile,
shown in the dataset drawer) and the split it served (``mlflow.data.context``: train / val / test). MLflow
keys a dataset by (name, digest), so the same file logged by several runs is one dataset, and an edited
file is a new one.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

CONTEXT_TAG = "mlflow.data.context"  # the input tag the UI shows next to the dataset name
SOURCE_TYPE = "local"


@dataclass(frozen=True)
class AnnotationInfo:
    name: str
    path: Path
    digest: str
    lines: int


def describe_annotation(path: str | Path) -> AnnotationInfo:
    """Name (the file name and its parent folder: ``val/fsd.txt``), digest and line count of `path`."""
    p = Path(path).expanduser().resolve()
    sha, lines = hashlib.sha256(), 0
    with open(p, "rb") as fh:
        for line in fh:
            sha.update(line)
            lines += bool(line.strip())
    name = f"{p.parent.name}/{p.name}" if p.parent.name else p.name
    return AnnotationInfo(name, p, sha.hexdigest()[:16], lines)


def log_annotation_inputs(client, run_id: str, files: dict[str, list[str | Path]]) -> list[AnnotationInfo]:
    """Record every annotation file of `files` ({context: [paths]}) as a dataset input of `run_id`."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    inputs, infos = [], []
    for context, paths in files.items():
        for path in paths:
            info = describe_annotation(path)
            dataset = Dataset(name=info.name, digest=info.digest, source_type=SOURCE_TYPE,
                              source=json.dumps({"uri": info.path.as_uri()}),
                              profile=json.dumps({"num_rows": info.lines, "annotation_file": str(info.path)}))
            inputs.append(DatasetInput(dataset, tags=[InputTag(CONTEXT_TAG, context)]))
            infos.append(info)
    if inputs:
        client.log_inputs(run_id, datasets=inputs)
    return infos
