"""The code MLflow runs to load a logged checkpoint model (MLflow's "models from code").

`mlflow.pyfunc.load_model("models:/<id>")` executes this file: the model is built from importable code,
never unpickled (stereo/tracking/mlflow_models.py logs it; the checkpoint itself is read without
executing pickled code, as everywhere in this project).
"""
from mlflow.models import set_model

from stereo.tracking.mlflow_models import CheckpointModel

set_model(CheckpointModel())
