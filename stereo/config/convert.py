"""`convert` spec: build annotation files from a dataset folder (TAO `DNDatasetConvertConfig`, flat).

TAO's convert spec is flat (its fields sit at the top level of `convert.yaml`), so ours is too. The
semantics (pattern matching, path derivation, seeded split) are implemented in `stereo.data.convert`;
`stereo.actions.convert` runs them as the `convert` action (status.json, experiment.yaml, MLflow).
"""
from __future__ import annotations

from dataclasses import dataclass

from stereo.config.fields import spec_field


@dataclass
class ConvertConfig:
    data_root: str = spec_field("", description="Dataset root. Its immediate sub-directories are walked "
                                "recursively; files directly in data_root are ignored (as in TAO).")
    results_dir: str = spec_field("", description="Where train.txt / val.txt / test.txt are written "
                                  "(overwritten, never appended; a split file of an earlier run that this "
                                  "run does not produce is removed). status.json and experiment.yaml go to "
                                  "<results_dir>/convert/.",
                                  tao_note="TAO writes status.json into results_dir itself.")
    image_dir_pattern: list[str] = spec_field([], description="Substrings that must ALL occur in a left "
                                              "image's path (e.g. ['image_2', 'training']).")
    right_dir_pattern: list[str] = spec_field([], description="Per-index replacements of image_dir_pattern "
                                              "that turn a left path into the right image path; empty: no "
                                              "right column.")
    depth_dir_pattern: list[str] = spec_field([], description="Per-index replacements that turn a left path "
                                              "into the disparity path (then image_extension -> "
                                              "depth_extension); empty: no disparity column.")
    nocc_dir_pattern: list[str] = spec_field([], description="Per-index replacements that turn a left path "
                                             "into the non-occlusion mask path (then image_extension -> "
                                             "nocc_extension); empty: no mask column.")
    split_ratio: float = spec_field(0.0, minimum=0.0, maximum=1.0, description="Fraction of samples in "
                                    "train.txt (the rest go to val.txt); 0.0 or 1.0 writes everything to "
                                    "test.txt.")
    image_extension: str = spec_field("jpg", description="Suffix a left image path must end with (e.g. "
                                      "'png', '_10.png'); also the substring replaced by depth/nocc "
                                      "extensions. Ignored when one character or shorter (as in TAO).")
    depth_extension: str = spec_field("png", description="Replaces image_extension in the disparity path.")
    nocc_extension: str = spec_field("png", description="Replaces image_extension in the mask path.")
    nocc_mask_dir_name: str = spec_field("", description="Accepted for TAO compatibility; unused (as in TAO).")
    seed: int = spec_field(42, description="(ours) Seed of the shuffle before the train/val split.",
                           tao_note="TAO shuffles without a seed and appends to existing files; ours is "
                           "seeded and overwrites.")
