"""Checkpoint files: safe reading of every supported format, our safetensors + JSON sidecar format, and
strict loading into a model. Renaming between naming families (TAO <-> NVlabs) lives in the remap modules.

    ckpt = read_checkpoint("model_best_bp2_serialize.pth")    # never executes pickled code
    load_state_dict_into(model, ckpt.state_dict, what=str(path))
    save_checkpoint("runs/x/best", model.state_dict(), config=asdict(model_cfg), meta={"mlflow_run_id": rid})
"""
from stereo.checkpoints.io import FORMATS, Checkpoint, read_checkpoint
from stereo.checkpoints.load import LoadReport, load_state_dict_into
from stereo.checkpoints.safe_pickle import load_pickled_checkpoint
from stereo.checkpoints.sidecar_format import (
                                              SIDECAR_FORMAT_VERSION,
                                              checkpoint_paths,
                                              checkpoint_sha256,
                                              read_sidecar,
                                              resolve_pair,
                                              save_checkpoint,
)

__all__ = [
                                              "FORMATS",
                                              "SIDECAR_FORMAT_VERSION",
                                              "Checkpoint",
                                              "LoadReport",
                                              "checkpoint_paths",
                                              "checkpoint_sha256",
                                              "load_pickled_checkpoint",
                                              "load_state_dict_into",
                                              "read_checkpoint",
                                              "read_sidecar",
                                              "resolve_pair",
                                              "save_checkpoint",
]
