"""Resolve the FFS width knobs of `ModelConfig` (None -> derived as TAO 7 does) and check they fit together."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from stereo.config.model import ModelConfig


@dataclass(frozen=True)
class FFSWidths:
    volume_dim: int
    gru_hidden: int
    cnet: Tuple[int, int]
    motion: Tuple[int, int, int, int]
    motion_final: int
    gating: Optional[Tuple[int, int]]
    disp_head_hidden: int
    disp_head_pwconv1: Tuple[int, int]
    mask: Tuple[int, int]
    stem_2: Tuple[int, int]
    spx_2_gru: Tuple[int, int, int, int]
    cam_mid: Optional[int]


def _pair(name: str, value, n: int) -> Tuple[int, ...]:
    value = tuple(int(v) for v in value)
    if len(value) != n:
        raise ValueError(f"model.{name} needs {n} values, got {list(value)}")
    return value


def resolve_widths(cfg: ModelConfig) -> FFSWidths:
    h0 = int(cfg.hidden_dims[0])
    gru_hidden = h0 if cfg.gru_hidden is None else int(cfg.gru_hidden)
    cnet = _pair("cnet_conv04_widths", cfg.cnet_conv04_widths or [h0, h0], 2)
    if cnet[0] != gru_hidden:
        raise ValueError(f"model.cnet_conv04_widths[0] ({cnet[0]}) initialises the GRU state and must equal "
                         f"model.gru_hidden ({gru_hidden})")
    if cfg.disp_head_input_dim is not None and int(cfg.disp_head_input_dim) != gru_hidden:
        raise ValueError(f"model.disp_head_input_dim ({cfg.disp_head_input_dim}) must equal model.gru_hidden "
                         f"({gru_hidden}); leave it null to derive it")
    inter = gru_hidden if cfg.disp_head_intermediate is None else int(cfg.disp_head_intermediate)
    pw = _pair("disp_head_pwconv1_widths", cfg.disp_head_pwconv1_widths or [4 * inter, 4 * inter], 2)
    mask = _pair("mask_widths", cfg.mask_widths, 2)
    stem = _pair("stem_2_widths", cfg.stem_2_widths, 2)
    spx = _pair("spx_2_gru_widths", cfg.spx_2_gru_widths, 4)
    if spx[0] != mask[1]:
        raise ValueError(f"model.spx_2_gru_widths[0] ({spx[0]}) must equal model.mask_widths[1] ({mask[1]}): "
                         f"the upsampler reads the mask features")
    if spx[2] != stem[1]:
        raise ValueError(f"model.spx_2_gru_widths[2] ({spx[2]}) must equal model.stem_2_widths[1] ({stem[1]}): "
                         f"the upsampler concatenates the 1/2-resolution stem")
    if cfg.spx_gru_out != 9:
        raise ValueError(f"model.spx_gru_out must be 9 (3x3 convex weights), got {cfg.spx_gru_out}")
    gating = None if cfg.gru_gating_conv_widths is None else _pair("gru_gating_conv_widths",
                                                                    cfg.gru_gating_conv_widths, 2)
    final = h0 - 1 if cfg.motion_encoder_final is None else int(cfg.motion_encoder_final)
    return FFSWidths(
        volume_dim=int(cfg.volume_dim), gru_hidden=gru_hidden, cnet=cnet,
        motion=_pair("motion_encoder_widths", cfg.motion_encoder_widths, 4), motion_final=final, gating=gating,
        disp_head_hidden=inter, disp_head_pwconv1=pw, mask=mask, stem_2=stem, spx_2_gru=spx,
        cam_mid=None if cfg.cam_mid_channels is None else int(cfg.cam_mid_channels))
