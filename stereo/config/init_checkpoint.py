"""`init-checkpoint` spec (flat, like convert's): which network to initialise randomly and where to write it."""
from __future__ import annotations

from dataclasses import dataclass

from stereo.config.fields import spec_field


@dataclass
class InitCheckpointConfig:
    output: str = spec_field("", description="Checkpoint to write: '<name>.pth', '<name>.safetensors' or "
                             "'<name>'; all three files of the published layout are written (<name>.safetensors "
                             "+ <name>.json sidecar + TAO-style <name>.pth).")
    preset: str = spec_field("ffs_bp2", description="A registered model preset (stereo.models.list_models(): "
                             "ffs_bp2, ffs_tiny, fs_vits, ...).")
    model_spec: str = spec_field("", description="A depth_net spec whose model block to use instead of preset "
                                 "(e.g. NVIDIA's FFS spec_template_train.yaml, placeholders filled).")
    seed: int = spec_field(0, minimum=0, description="torch seed of the random initialisation.")
    overwrite: bool = spec_field(False, description="Replace existing output files; false: refuse.")
    results_dir: str = spec_field("", description="status.json and experiment.yaml go to "
                                  "<results_dir>/init-checkpoint/; empty: the output's folder.")
