"""`model.*`: which network and how it is shaped (TAO `DepthNetModelConfig` field names and meanings).

The networks receive only this section (never the whole spec). Fields marked `ours` are extensions
TAO does not have; they default to the value that reproduces TAO/NVlabs behaviour.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from stereo.config.fields import spec_field

MODEL_TYPES = ("FoundationStereo", "FastFoundationStereo")
ENCODERS = ("vitt", "vits", "vitb", "vitl")  # vitt = tiny test ViT (ours); TAO's vitg is not supported
CNN_BACKBONES = ("edgenext_small", "edgenext_tiny")  # edgenext_tiny = tiny test CNN (ours)
ATTENTION_LAYOUTS = ("auto", "standard", "heads_as_sequence", "tao_view")
FS_VARIANTS = ("nvlabs", "tao")


@dataclass
class StereoBackboneConfig:
    depth_anything_v2_pretrained_path: str = spec_field(
        "", description="DepthAnything-V2 (DINOv2 + DPT) weights for the frozen FoundationStereo ViT branch "
        "(upstream `depth_anything_v2_vit?.pth` or TAO layout). Empty: random init / from the checkpoint.")
    edgenext_pretrained_path: str = spec_field(
        "", description="EdgeNeXt-S ImageNet weights for the CNN branch (timm or TAO layout). Empty: none.")
    use_bn: bool = spec_field(False, description="DPT head uses BatchNorm (DepthAnything `use_bn`).")
    use_clstoken: bool = spec_field(False, description="DPT head concatenates the class token (`use_clstoken`).")


@dataclass
class ModelConfig:
    model_type: str = spec_field(
        "FastFoundationStereo", enum=MODEL_TYPES, description="Network family.",
        tao_note="TAO's default is a mono model (MetricDepthAnything); stereo-automl is stereo only.")
    encoder: str = spec_field(
        "vitl", enum=ENCODERS, description="ViT size of the DepthAnything-V2 branch (FS). For FFS it only sizes "
        "the 'phantom' ViT channel band of the feature head (vitl -> 224 channels at 1/4).")
    cnn_backbone: str = spec_field(
        "edgenext_small", enum=CNN_BACKBONES, description="(ours) CNN feature backbone; edgenext_tiny is the "
        "tiny test/demo network.")
    variant: str = spec_field(
        "nvlabs", enum=FS_VARIANTS, description="(ours) FoundationStereo implementation family whose "
        "checkpoints should load: 'nvlabs' (NVlabs/FoundationStereo) or 'tao' (TAO FoundationStereo, "
        "InstanceNorm variant). Ignored by FastFoundationStereo.")
    attention_layout: str = spec_field(
        "auto", enum=ATTENTION_LAYOUTS, description="(ours) disparity-transformer attention layout: 'standard' "
        "(attention across disparity tokens), 'heads_as_sequence' (what the FFS bp2 weights were trained "
        "with), 'tao_view' (TAO FoundationStereo). auto: FFS -> heads_as_sequence, FS nvlabs -> standard, "
        "FS tao -> tao_view.")
    stereo_backbone: StereoBackboneConfig = field(default_factory=StereoBackboneConfig)
    hidden_dims: List[int] = spec_field([128, 128, 128], minimum=1,
                                        description="ConvGRU hidden widths per level (FFS bp2: [128]).")
    n_gru_layers: int = spec_field(3, minimum=1, maximum=3, description="Number of ConvGRU levels (FFS bp2: 1).")
    corr_radius: int = spec_field(4, minimum=2, maximum=8, automl=False,
                                  description="Geometry lookup radius (2r+1 taps). A checkpoint invariant.",
                                  tao_note="TAO marks it searchable; it changes the shapes of a pretrained "
                                  "checkpoint, so ours is not searched.")
    corr_levels: int = spec_field(2, minimum=1, maximum=2, description="Geometry pyramid levels.")
    n_downsample: int = spec_field(2, minimum=2, maximum=2,
                                   description="Feature downsampling (2 -> 1/4 resolution; the only value the "
                                   "published networks use).")
    max_disparity: int = spec_field(416, minimum=32, maximum=1024, math_cond="/ 32", unit="px",
                                    description="Model-side cost-volume size (D = max_disparity/4 levels). "
                                    "FFS bp2: 192. Multiple of 32.")
    train_iters: int = spec_field(22, minimum=1, description="GRU iterations in training.")
    valid_iters: int = spec_field(22, minimum=1, description="GRU iterations in validation/test/inference "
                                  "(FFS bp2: 8).")
    volume_dim: int = spec_field(28, minimum=4, maximum=64, automl=False,
                                 description="Filtered cost-volume channels. FS hard-codes 28; FFS reads it "
                                 "(bp2: 28).",
                                 tao_note="TAO's default 32 is a no-op for FS and wrong for FFS bp2; ours is 28 "
                                 "and not searchable.")
    cv_group: int = spec_field(8, minimum=1, maximum=16, automl=False,
                               description="Group-wise correlation groups (a checkpoint invariant).")
    concat_channel: int = spec_field(24, minimum=2, description="Concatenation-volume channels (12 per side).")
    low_memory: int = spec_field(0, minimum=0, maximum=4, description="Geometry lookup: 0 = grid_sample; >0 = "
                                 "gather-based 1-D sampler (less memory).")
    mixed_precision: bool = spec_field(False, description="Autocast inside forward (CUDA only; no-op on CPU).")
    gwc_feature_normalize: bool = spec_field(True, description="L2-normalise features per group before "
                                             "group-wise correlation (FFS bp2 needs true).")
    # --- the 15 FFS width overrides (None = derive from hidden_dims/volume_dim as TAO does) ---
    motion_encoder_widths: List[int] = spec_field([256, 256, 64, 64], minimum=1,
                                                  description="FFS motion encoder convc1/convc2/convd1/convd2.")
    motion_encoder_final: Optional[int] = spec_field(None, minimum=1, description="FFS motion-encoder output "
                                                     "(None -> hidden_dims[0]-1).")
    gru_hidden: Optional[int] = spec_field(None, minimum=1, description="FFS GRU hidden width "
                                           "(None -> hidden_dims[0]).")
    gru_gating_conv_widths: Optional[List[int]] = spec_field(None, minimum=1, description="FFS GRU gating "
                                                             "conv0/conv1 widths (None -> [in, in+hidden]).")
    disp_head_input_dim: Optional[int] = spec_field(None, minimum=1, description="FFS DispHead input width "
                                                    "(must equal gru_hidden; derived when None).")
    disp_head_intermediate: Optional[int] = spec_field(None, minimum=1, description="FFS DispHead "
                                                       "intermediate width (None -> input width).")
    disp_head_pwconv1_widths: Optional[List[int]] = spec_field(None, minimum=1, description="FFS DispHead "
                                                               "EdgeNeXt-block pwconv1 widths "
                                                               "(None -> [4*intermediate]*2).")
    mask_widths: List[int] = spec_field([64, 32], minimum=1, description="FFS update-block mask head widths.")
    stem_2_widths: List[int] = spec_field([32, 32], minimum=1, description="FFS 1/2-resolution stem widths.")
    spx_2_gru_widths: List[int] = spec_field([32, 32, 32, 32], minimum=1,
                                             description="FFS spx_2_gru [in, mid, rem, out] widths.")
    spx_gru_out: int = spec_field(9, minimum=9, maximum=9, description="Convex-upsampling weights (3x3 = 9).")
    classifier_mid: Optional[int] = spec_field(None, minimum=1, description="Accepted for TAO compatibility; "
                                               "the FFS classifier is a single Conv3d (not read).")
    cnet_conv04_widths: Optional[List[int]] = spec_field(None, minimum=1, description="FFS context head "
                                                         "widths (net, inp) (None -> [hidden_dims[0]]*2).")
    cam_mid_channels: Optional[int] = spec_field(None, minimum=1, description="Channel-attention hidden "
                                                 "width (None -> in/16).")
    cost_agg_conv_patch_padding: Optional[List[int]] = spec_field(None, minimum=0, description="Accepted for "
                                                                  "TAO compatibility; FFS uses [0,0,0].")


#: The FastFoundationStereo "bp2" invariants (checkpoint `model_best_bp2_serialize.pth`).
FFS_BP2: dict = {
    "model_type": "FastFoundationStereo",
    "encoder": "vitl",
    "hidden_dims": [128],
    "n_gru_layers": 1,
    "corr_radius": 4,
    "corr_levels": 2,
    "n_downsample": 2,
    "max_disparity": 192,
    "volume_dim": 28,
    "cv_group": 8,
    "concat_channel": 24,
    "gwc_feature_normalize": True,
    "motion_encoder_widths": [56, 96, 16, 12],
    "motion_encoder_final": 48,
    "gru_hidden": 60,
    "gru_gating_conv_widths": [100, 168],
    "disp_head_input_dim": 60,
    "disp_head_intermediate": 36,
    "disp_head_pwconv1_widths": [212, 244],
    "mask_widths": [32, 16],
    "stem_2_widths": [12, 16],
    "spx_2_gru_widths": [16, 12, 16, 24],
    "spx_gru_out": 9,
    "classifier_mid": 14,
    "cnet_conv04_widths": [60, 48],
    "cam_mid_channels": 8,
    "cost_agg_conv_patch_padding": [0, 0, 0],
}
#: The 15 width overrides (subset of FFS_BP2 keys).
FFS_WIDTH_FIELDS = (
    "motion_encoder_widths", "motion_encoder_final", "gru_hidden", "gru_gating_conv_widths",
    "disp_head_input_dim", "disp_head_intermediate", "disp_head_pwconv1_widths", "mask_widths",
    "stem_2_widths", "spx_2_gru_widths", "spx_gru_out", "classifier_mid", "cnet_conv04_widths",
    "cam_mid_channels", "cost_agg_conv_patch_padding",
)
