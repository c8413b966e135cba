"""`ExperimentSpec`: the whole `depth_net` spec (TAO top-level layout), one typed section per concern.

Each action receives only the sections it needs (e.g. the trainer gets `spec.train`, `spec.model`,
`spec.dataset`), never the whole spec.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

from stereo.config.actions import EvaluateConfig, ExportConfig, GenTrtEngineConfig, InferenceConfig
from stereo.config.dataset import DatasetConfig
from stereo.config.fields import spec_field
from stereo.config.model import ModelConfig
from stereo.config.quantize import QuantizeConfig
from stereo.config.train import TrainConfig


@dataclass
class WandbConfig:
    """Accepted so TAO specs load; stereo-automl never sends data to Weights & Biases (tracking is MLflow)."""
    enable: bool = spec_field(False, description="Ignored; a warning is printed when true.",
                              tao_note="TAO enables W&B by default; ours never contacts W&B.")
    project: str = spec_field("", description="Ignored.")
    entity: str = spec_field("", description="Ignored.")
    group: str = spec_field("", description="Ignored.")
    name: str = spec_field("", description="Ignored.")
    tags: List[str] = spec_field([], description="Ignored.")
    reinit: bool = spec_field(False, description="Ignored.")
    sync_tensorboard: bool = spec_field(False, description="Ignored.")
    save_code: bool = spec_field(False, description="Ignored.")
    run_id: str = spec_field("", description="Ignored.")


@dataclass
class ExperimentSpec:
    """A `depth_net` experiment spec."""
    model_name: str = spec_field("depth_net", description="Name recorded with the run.")
    results_dir: str = spec_field("", description="Root output folder; each action writes to "
                                  "<results_dir>/<action>/ unless <action>.results_dir is set.")
    encryption_key: str = spec_field("", description="Accepted for TAO compatibility; checkpoints are not "
                                     "encrypted.", tao_note="TAO may encrypt checkpoints; ours never does.")
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    gen_trt_engine: GenTrtEngineConfig = field(default_factory=GenTrtEngineConfig)
    quantize: QuantizeConfig = field(default_factory=QuantizeConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)


#: the spec sections each action reads (schemas and action-specific checks use this)
ACTION_SECTIONS = {
    "train": ("dataset", "model", "train"),
    "evaluate": ("dataset", "model", "evaluate", "inference"),
    "inference": ("dataset", "model", "inference"),
    "export": ("dataset", "model", "export"),
    "gen_trt_engine": ("dataset", "model", "gen_trt_engine"),
    "quantize": ("dataset", "model", "export", "quantize"),
}
