"""`train.*` and `train.optim.*`: trainer, optimizer and schedule (TAO `DepthNetTrainExpConfig` names).

The trainer receives this section (plus the model and dataset sections it builds from); it never reads
other actions' sections. Fields TAO declares but never wires are kept so TAO specs load; their
descriptions say so.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from stereo.config.fields import spec_field

#: the schedulers our trainer implements (stepped every optimizer step, as in TAO)
LR_SCHEDULERS = ("MultiStepLR", "StepLR", "LambdaLR", "PolynomialLR", "OneCycleLR", "CosineAnnealingLR")
OPTIMIZERS = ("AdamW", "SGD")
PRECISIONS = ("fp32", "fp16", "bf16")
_MONO_ONLY = "Accepted for TAO compatibility (mono only); unused."


@dataclass
class OptimConfig:
    """Optimizer and learning-rate schedule."""
    optimizer: str = spec_field("AdamW", enum=OPTIMIZERS, description="AdamW(lr, weight_decay) or "
                                "SGD(lr, momentum, weight_decay).")
    monitor_name: str = spec_field("val_loss", enum=("val_loss", "train_loss"),
                                   description="Metric that picks the best checkpoint.")
    lr: float = spec_field(1e-4, minimum=1e-6, maximum=1e-2, automl=True, log_scale=True, math_cond="> 0.0",
                           title="learning rate", description="Peak learning rate (after warm-up).")
    momentum: float = spec_field(0.9, minimum=0.0, maximum=1.0, description="SGD momentum (ignored by AdamW, "
                                 "whose betas are fixed at (0.9, 0.999)).",
                                 tao_note="TAO declares it searchable but never reads it (SGD momentum is "
                                 "hard-coded 0.9); ours feeds SGD and is not searched by default because the "
                                 "default optimizer, AdamW, ignores it.")
    weight_decay: float = spec_field(1e-4, minimum=1e-6, maximum=1e-2, automl=True, log_scale=True,
                                     math_cond="> 0.0", title="weight decay",
                                     description="Decoupled (AdamW) or L2 (SGD) weight decay.")
    lr_scheduler: str = spec_field(
        "MultiStepLR", enum=LR_SCHEDULERS, description="MultiStepLR: x lr_decay at each of lr_steps; StepLR: "
        "x lr_decay every lr_step_size steps; LambdaLR and PolynomialLR: linear decay to 0 over the run; "
        "OneCycleLR: one cycle peaking at lr; CosineAnnealingLR: cosine down to min_lr. All step per "
        "optimizer step.", tao_note="TAO's enum lists 'MultiStep' and 'CustomMultiStepLRScheduler' (both "
        "raise NotImplementedError) and omits its own default MultiStepLR; ours lists exactly the "
        "implemented schedulers.")
    lr_steps: List[int] = spec_field([1000], minimum=1, unit="steps",
                                     description="MultiStepLR milestones (optimizer steps).")
    lr_step_size: int = spec_field(1000, minimum=1, maximum=10000, automl=False, math_cond="> 0", unit="steps",
                                   description="StepLR period (optimizer steps); only StepLR reads it.",
                                   tao_note="TAO flags it searchable; ours is not searched by default because the "
                                   "default scheduler, MultiStepLR, ignores it (search it with lr_scheduler: "
                                   "StepLR through an explicit range in search_spaces/<model>.yaml).")
    lr_decay: float = spec_field(0.1, minimum=0.0, maximum=1.0, automl=True, math_cond="> 0.0",
                                 title="learning rate decay",
                                 description="Multiplicative decay of MultiStepLR and StepLR.")
    min_lr: float = spec_field(1e-7, minimum=1e-8, maximum=1e-3, automl=False, log_scale=True,
                               math_cond="> 0.0",
                               description="Floor of CosineAnnealingLR (eta_min); only CosineAnnealingLR reads it.",
                               tao_note="TAO flags it searchable; ours is not searched by default because the "
                               "default scheduler, MultiStepLR, ignores it (search it with lr_scheduler: "
                               "CosineAnnealingLR through an explicit range in search_spaces/<model>.yaml).")
    warmup_steps: int = spec_field(
        0, minimum=0, unit="steps", description="Linear warm-up from 0 to lr over this many optimizer "
        "steps, then the scheduler takes over. 0 disables.", tao_note="TAO defaults to 20 but never applies "
        "it; ours really warms up, so the default is 0 (TAO's effective behaviour).")


@dataclass
class CudnnConfig:
    benchmark: bool = spec_field(False, description="cudnn.benchmark (GPU only).")
    deterministic: bool = spec_field(True, description="cudnn.deterministic (GPU only).")


@dataclass
class TrainConfig:
    """Trainer settings."""
    num_gpus: int = spec_field(1, minimum=1, popular=True, description="GPUs per node.")
    gpu_ids: List[int] = spec_field([0], minimum=0, popular=True, description="GPU indices to use.")
    num_nodes: int = spec_field(1, minimum=1, popular=True, description="Nodes (multi-node when > 1).")
    seed: int = spec_field(1234, minimum=-1, description="Global seed; < 0 disables seeding.")
    cudnn: CudnnConfig = field(default_factory=CudnnConfig)
    num_epochs: int = spec_field(10, minimum=1, popular=True, description="Training epochs (see max_steps).")
    max_steps: int = spec_field(-1, minimum=-1, unit="steps", description="(ours) Stop after this many "
                                "optimizer steps; -1: num_epochs decides. Used by short sweep trials.",
                                tao_note="Not in TAO.")
    checkpoint_interval: int = spec_field(1, minimum=1, popular=True,
                                          description="Save a checkpoint every N units (see the unit).")
    checkpoint_interval_unit: str = spec_field("epoch", enum=("epoch", "step"),
                                               description="Unit of checkpoint_interval.")
    checkpoint_interval_steps: Optional[int] = spec_field(
        None, minimum=1, description="Accepted for TAO compatibility; use checkpoint_interval_unit: step.")
    validation_interval: int = spec_field(1, minimum=1, popular=True, description="Validate every N epochs.")
    resume_training_checkpoint_path: str = spec_field("", description="Checkpoint to resume from (optimizer "
                                                      "and schedule included). Empty: auto-resume from "
                                                      "the latest checkpoint in results_dir, if any.")
    pretrained_model_path: str = spec_field("", description="Weights to start from (e.g. the FFS bp2 "
                                            "checkpoint). Ignored when resuming.")
    results_dir: str = spec_field("", description="Output folder; empty: <results_dir>/train.")
    clip_grad_norm: float = spec_field(0.1, minimum=0.0, math_cond=">= 0.0", description="Clip the global "
                                       "L2 norm of the gradients to this value; 0 disables clipping.",
                                       tao_note="TAO clips by value despite the name; ours clips by L2 norm "
                                       "and 0 disables.")
    dataloader_visualize: bool = spec_field(False, description="Log augmented training samples as images.")
    vis_step_interval: int = spec_field(10, minimum=1, unit="steps", description="Interval of the sample "
                                        "visualisation.")
    is_dry_run: bool = spec_field(False, description="Run one train and one validation batch, then stop.")
    precision: str = spec_field("fp32", enum=PRECISIONS, description="fp32, fp16 (mixed) or bf16 (mixed).")
    distributed_strategy: str = spec_field("ddp", enum=("ddp", "fsdp"), description="Multi-GPU strategy.")
    activation_checkpoint: bool = spec_field(False, description="Recompute activations in backward to save "
                                             "memory.")
    inference_tile: bool = spec_field(False, description=_MONO_ONLY)
    tile_wtype: str = spec_field("gaussian", description=_MONO_ONLY)
    tile_min_overlap: List[int] = spec_field([16, 16], minimum=0, description=_MONO_ONLY)
    log_every_n_steps: int = spec_field(500, minimum=1, unit="steps", description="Logging interval.")
    optim: OptimConfig = field(default_factory=OptimConfig)
