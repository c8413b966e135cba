"""`dataset.*`: data sources per split, loader settings and training augmentation (TAO field names)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from stereo.config.fields import spec_field

#: dataset_name values (case-insensitive); the registry in stereo.data.datasets is authoritative.
DATASET_NAMES = ("FSD", "IsaacRealDataset", "Crestereo", "Middlebury", "Eth3d", "Kitti", "GenericDataset")
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


@dataclass
class DataSourceConfig:
    dataset_name: str = spec_field("", description="Dataset class: " + ", ".join(DATASET_NAMES) +
                                   " (case-insensitive).")
    data_file: str = spec_field("", description="Annotation file: one sample per line, 2 (left right), "
                                "3 (+ disparity) or 4 (+ non-occlusion mask) space-separated paths; relative "
                                "paths resolve against the annotation file's folder.")


@dataclass
class AugmentationConfig:
    """Applied to the training split only; validation/test/inference data are never augmented."""
    input_mean: List[float] = spec_field(IMAGENET_MEAN, description="Normalisation mean (RGB, 0..1). The "
                                         "networks normalise internally with ImageNet statistics.")
    input_std: List[float] = spec_field(IMAGENET_STD, description="Normalisation std (RGB, 0..1).")
    crop_size: List[int] = spec_field([320, 736], minimum=32, math_cond="/ 32", unit="px",
                                      description="[H, W] training crop; multiples of 32.",
                                      tao_note="TAO's default [518, 518] is not a multiple of 32; ours is "
                                      "[320, 736] (the FoundationStereo recipe).")
    min_scale: float = spec_field(-0.2, minimum=-2.0, maximum=1.0, description="Minimum log2 scale "
                                  "exponent of the spatial augmentation.",
                                  tao_note="TAO declares range [0.2, 1] and a default of -0.2 outside it; "
                                  "ours declares [-2, 1].")
    max_scale: float = spec_field(0.4, minimum=-2.0, maximum=2.0, description="Maximum log2 scale exponent.")
    do_flip: bool = spec_field(False, description="Random horizontal flip that swaps left and right (the "
                               "only flip that keeps stereo geometry), with probability h_flip_prob.",
                               tao_note="TAO declares a string ('False', 'h', 'hf', 'v'); ours is a boolean.")
    yjitter_prob: float = spec_field(1.0, minimum=0.0, maximum=1.0, automl=True,
                                     description="Probability of a +-2 px vertical offset of the right crop.")
    gamma: List[float] = spec_field([1.0, 1.0, 1.0, 1.0], description="Accepted for TAO compatibility; "
                                    "unused (as in TAO).")
    color_aug_prob: float = spec_field(0.2, minimum=0.0, maximum=1.0, automl=True,
                                       description="Probability of asymmetric (independent left/right) colour "
                                       "jitter; otherwise one shared jitter.")
    color_aug_brightness: float = spec_field(0.4, minimum=0.0, maximum=1.0, description="Symmetric "
                                             "brightness jitter.")
    color_aug_contrast: float = spec_field(0.4, minimum=0.0, maximum=1.0, description="Symmetric contrast "
                                           "jitter.")
    color_aug_saturation: List[float] = spec_field([0.0, 1.4], minimum=0.0, description="Symmetric "
                                                   "saturation factor range.")
    color_aug_hue_range: List[float] = spec_field([-5.0 / 180.0, 5.0 / 180.0], minimum=-0.5, maximum=0.5,
                                                  description="Hue shift range (fraction of a turn).")
    eraser_aug_prob: float = spec_field(0.5, minimum=0.0, maximum=1.0, automl=True,
                                        description="Probability of erasing 1-2 rectangles of the right image.")
    spatial_aug_prob: float = spec_field(1.0, minimum=0.0, maximum=1.0, automl=True,
                                         description="Probability of the random scale/stretch resize (disparity "
                                         "scaled with the width) before the crop.",
                                         tao_note="TAO resizes down and back up (a blur; disparity untouched); "
                                         "ours is RAFT-Stereo's real rescale, which teaches scale variation.")
    stretch_prob: float = spec_field(0.8, minimum=0.0, maximum=1.0, automl=True,
                                     description="Probability of an anisotropic stretch.")
    max_stretch: float = spec_field(0.2, minimum=0.0, maximum=1.0, description="Maximum log2 stretch.")
    h_flip_prob: float = spec_field(0.5, minimum=0.0, maximum=1.0, description="Flip probability when "
                                    "do_flip is true.", tao_note="Not wired in TAO; wired here.")
    v_flip_prob: float = spec_field(0.5, minimum=0.0, maximum=1.0, description="Accepted for TAO "
                                    "compatibility; unused (vertical flips break rectification).")
    hshift_prob: float = spec_field(0.5, minimum=0.0, maximum=1.0, description="Accepted for TAO "
                                    "compatibility; unused (as in TAO).")
    crop_min_valid_disp_ratio: float = spec_field(0.0, minimum=0.0, maximum=1.0, automl=True,
                                                  description="Retry crops (up to 100) until this fraction "
                                                  "of pixels has valid disparity.")


@dataclass
class SplitConfig:
    data_sources: List[DataSourceConfig] = spec_field([], description="Annotation files of this split, "
                                                      "concatenated; each entry needs dataset_name and data_file.")
    batch_size: int = spec_field(1, minimum=1, description="Samples per batch.")
    workers: int = spec_field(8, minimum=0, description="DataLoader worker processes (0 = in the main "
                              "process).", tao_note="TAO requires >= 1.")
    pin_memory: bool = spec_field(True, description="Pin host memory (only matters with a GPU).")
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)


@dataclass
class QuantCalibrationConfig:
    images_dir: str = spec_field("", description="depth_net quantize: folder of stereo pairs that calibrate "
                                 "the int8 activation ranges (left/ and right/ subfolders with the same file "
                                 "names, im0/im1 per scene, or *_left/*_right files; searched recursively).")


@dataclass
class DatasetConfig:
    dataset_name: str = spec_field("StereoDataset", enum=("StereoDataset",), description="TAO task selector; "
                                   "always StereoDataset here.")
    max_disparity: int = spec_field(416, minimum=1, maximum=1024, unit="px",
                                    description="Data-side limit: pixels with GT >= max_disparity are excluded "
                                    "from loss and metrics. Usually equals model.max_disparity.")
    min_depth: Optional[float] = spec_field(None, minimum=0.0, description="Accepted for TAO compatibility "
                                            "(mono only); unused.")
    max_depth: Optional[float] = spec_field(None, minimum=1.0, description="Accepted for TAO compatibility "
                                            "(mono only); unused.")
    normalize_depth: bool = spec_field(False, description="Accepted for TAO compatibility (mono only); unused.")
    baseline: float = spec_field(0.193001, minimum=0.0, unit="m", description="Stereo baseline; not used by "
                                 "disparity training.")
    focal_x: float = spec_field(1998.842, minimum=0.0, unit="px", description="Focal length; not used by "
                                "disparity training.")
    train_dataset: SplitConfig = field(default_factory=SplitConfig)
    val_dataset: SplitConfig = field(default_factory=SplitConfig)
    test_dataset: SplitConfig = field(default_factory=SplitConfig)
    infer_dataset: SplitConfig = field(default_factory=SplitConfig)
    quant_calibration_dataset: QuantCalibrationConfig = field(default_factory=QuantCalibrationConfig)
