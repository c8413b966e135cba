"""A trained checkpoint as an MLflow logged model (the runs table's "Models" column, the Models tab).

    model_id = log_checkpoint_model(client, run_id, experiment_id, "dn_model_best.safetensors", name="t0003")
    mlflow.pyfunc.load_model(f"models:/{model_id}").predict({"left": left, "right": right})

One implementation, shared by the train action (its best checkpoint) and whoever registers models later
(``mlflow.register_model(f"models:/{model_id}", name)`` works on what this returns). The model is a pyfunc
whose artifacts are the checkpoint and its JSON sidecar (which holds the model config), built at load
time by stereo/tracking/pyfunc_entry.py (MLflow's "models from code": nothing is pickled). ``predict`` builds
the network from the sidecar, loads the weights strictly (stereo.training.inference_loop.load_model,
no pickled code executed) and returns the disparity ``[B,1,H,W]`` for ``left``/``right`` float32
``[B,3,H,W]`` RGB 0..255 (the contract in docs/ARCHITECTURE.md).

Pip requirements are given, not inferred: inference would import the model in a subprocess (seconds)
and may capture a CUDA wheel.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import mlflow.pyfunc

MODEL_TYPE = "stereo-depth"  # LoggedModel.model_type: how the Models tab labels it
#: the packages a loader needs (the stereo package itself is this checkout, not a wheel)
REQUIREMENTS = ("torch", "safetensors", "numpy", "omegaconf")
#: MLflow's "models from code": this file builds the model at load time (nothing of ours is pickled)
ENTRY = Path(__file__).with_name("pyfunc_entry.py")
_PROGRESS_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


class CheckpointModel(mlflow.pyfunc.PythonModel):
    """Loads the logged checkpoint lazily; ``predict({"left", "right"})`` -> disparity (numpy)."""

    # no type-hint schema for a dict of two image batches: MLflow would otherwise wrap predict and warn
    # ("Add type hints to the predict method") when this class is created
    _skip_type_hint_validation = True

    def load_context(self, context) -> None:
        self._weights = context.artifacts["weights"]
        self._model = None

    def _network(self):
        if self._model is None:
            from stereo.config.model import ModelConfig
            from stereo.config.model_source import sidecar_model_config
            from stereo.training.inference_loop import load_model

            found = sidecar_model_config(self._weights)
            if found is None:
                raise ValueError(f"{self._weights} has no JSON sidecar with its model config; log the "
                                 "checkpoint together with its .json (depth_net train writes both)")
            cfg = ModelConfig(**found[1])
            self._model, _ = load_model(cfg, self._weights, what="logged model")
        return self._model

    def predict(self, context, model_input, params=None):
        import numpy as np
        import torch

        model = self._network()
        device = next(model.parameters()).device
        left, right = (torch.as_tensor(np.asarray(model_input[k], dtype=np.float32), device=device)
                       for k in ("left", "right"))
        with torch.no_grad():
            return model(left, right, test_mode=True).cpu().numpy()



@contextlib.contextmanager
def _quiet_copy():
    """No "Downloading artifacts" progress bars on the action's console while pyfunc copies the files."""
    before = os.environ.get(_PROGRESS_ENV)
    os.environ[_PROGRESS_ENV] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(_PROGRESS_ENV, None)
        else:
            os.environ[_PROGRESS_ENV] = before


def log_checkpoint_model(client, run_id: str, experiment_id: str, checkpoint: str | Path, *, name: str,
                         step: int = 0, params: dict[str, str] | None = None) -> str:
    """Log `checkpoint` (+ its ``.json`` sidecar beside it) as a READY logged model, output of `run_id` at
    `step`; returns the model id. `params` (e.g. the sampled values) are shown with the model."""
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus

    weights = Path(checkpoint).resolve()  # dn_model_best is a link: log the file it names
    sidecar = weights.with_suffix(".json")
    if not weights.is_file():
        raise FileNotFoundError(f"checkpoint {weights} does not exist; log a model after it is written")
    model = client.create_logged_model(experiment_id, name=name, source_run_id=run_id, model_type=MODEL_TYPE,
                                       params={k: str(v) for k, v in (params or {}).items()})
    try:
        with tempfile.TemporaryDirectory(prefix="stereo-model-") as tmp:
            out = Path(tmp) / "model"
            artifacts = {"weights": str(weights)}
            if sidecar.is_file():
                artifacts["sidecar"] = str(sidecar)
            with _quiet_copy():
                mlflow.pyfunc.save_model(str(out), python_model=str(ENTRY), artifacts=artifacts,
                                         pip_requirements=list(REQUIREMENTS),
                                         metadata={"checkpoint": weights.name, "source_run_id": run_id})
            # pyfunc copies each artifact into artifacts/ under its own name: the sidecar stays beside its weights
            client.log_model_artifacts(model.model_id, str(out))
    except BaseException:
        client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step)])
    return model.model_id


def register_checkpoint_model(client, model_id: str, name: str, *, tags: dict[str, str] | None = None,
                              description: str | None = None) -> tuple[int, bool]:
    """Register the logged model `model_id` as a new version of the registered model `name` (created when
    missing); returns (version, True), or (its version, False) when it is registered there already. The
    version keeps the model's run as its source run."""
    from mlflow.exceptions import MlflowException

    model = client.get_logged_model(model_id)
    try:
        known = client.search_model_versions(f"name = {_quote_name(name)}")
    except MlflowException:
        known = []
    for version in known:
        if getattr(version, "model_id", None) == model_id or version.source == f"models:/{model_id}":
            return int(version.version), False
    try:
        client.create_registered_model(name, description="Stereo-depth checkpoints registered with automl "
                                                          "promote (stereo-automl).")
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    # MLflow's SQL registry store looks the logged model up through the process-wide tracking URI, not
    # this client's (mlflow 3.17, model_registry/sqlalchemy_store.py create_model_version): point it here
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    with _use_tracking_uri(client.tracking_uri):
        version = client.create_model_version(name, source=f"models:/{model_id}", run_id=model.source_run_id,
                                              tags={k: str(v) for k, v in (tags or {}).items()},
                                              description=description, model_id=model_id)
    return int(version.version), True


def _quote_name(name: str) -> str:
    if "'" in name:
        raise ValueError(f"registered model name {name!r} may not contain a single quote")
    return f"'{name}'"
