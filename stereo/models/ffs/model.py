"""FastFoundationStereo with the pruned "bp2" structure (checkpoint `model_best_bp2_serialize.pth`).

Parameter names are those of the research checkpoint (`ffs_bp2_upstream.tsv`); every width comes from
`ModelConfig` (see `widths.py`). Dead legacy modules are not registered: `load_upstream_state_dict`
ignores exactly their keys (`dead_keys.py`).
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Dict, List, Mapping, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from stereo.config.model import ModelConfig
from stereo.models.base import StereoModel
from stereo.models.ffs.dead_keys import OPTIONAL_KEYS, dead_keys
from stereo.models.ffs.feature import FFSFeature
from stereo.models.ffs.hourglass import FFSHourglass
from stereo.models.ffs.widths import resolve_widths
from stereo.models.layers.attention import ChannelAttentionEnhancement, FeatureAtt, SpatialAttentionExtractor
from stereo.models.layers.containers import ForwardHelper
from stereo.models.layers.conv import BasicConv, Conv2x
from stereo.models.layers.cost_volume import build_concat_volume, build_gwc_volume, disparity_regression
from stereo.models.layers.geometry import CombinedGeoEncodingVolume
from stereo.models.layers.update import BasicSelectiveMultiUpdateBlock
from stereo.models.layers.upsample import context_upsample


class ContextNetSharedBackbone(nn.Module):
    """FFS context: two 3x3 conv+BN+LReLU heads on the 1/4 feature -> (net, inp) of the single GRU level."""

    def __init__(self, in_channels: int, widths: Tuple[int, int]):
        super().__init__()
        self.conv04 = nn.ModuleList([BasicConv(in_channels, w, norm="bn", kernel_size=3, padding=1) for w in widths])

    def forward(self, x4: torch.Tensor) -> List[torch.Tensor]:
        return [conv(x4) for conv in self.conv04]


def _resolve_layout(cfg: ModelConfig) -> str:
    return "heads_as_sequence" if cfg.attention_layout == "auto" else cfg.attention_layout


class FastFoundationStereo(StereoModel):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.model_type != "FastFoundationStereo":
            raise ValueError(f"model.model_type is {cfg.model_type!r}; FastFoundationStereo needs "
                             f"'FastFoundationStereo'")
        if cfg.n_gru_layers != 1:
            raise ValueError(f"FastFoundationStereo refines at 1/4 only: model.n_gru_layers must be 1, got "
                             f"{cfg.n_gru_layers}")
        if cfg.max_disparity % 32:
            raise ValueError(f"model.max_disparity must be a multiple of 32 (three 2x volume downsamplings and a "
                             f"4x patchify of D = max_disparity/4), got {cfg.max_disparity}")
        if cfg.concat_channel % 2:
            raise ValueError(f"model.concat_channel must be even (half per image), got {cfg.concat_channel}")
        self.cfg = cfg
        self.train_iters, self.valid_iters = cfg.train_iters, cfg.valid_iters
        w = resolve_widths(cfg)
        self.widths = w
        c = w.volume_dim
        self.max_disp = cfg.max_disparity // 4
        self.feature = FFSFeature(cfg.cnn_backbone, cfg.encoder)
        d = self.feature.d_out
        if d[0] % cfg.cv_group:
            raise ValueError(f"the 1/4 feature width {d[0]} must be divisible by model.cv_group ({cfg.cv_group})")
        cor_planes = cfg.corr_levels * (2 * cfg.corr_radius + 1) * (c + 1)
        self.update_block = BasicSelectiveMultiUpdateBlock(
            cor_planes=cor_planes, hidden_dim=w.gru_hidden, n_gru_layers=1, context_dims=[w.cnet[1]],
            motion_widths=w.motion, motion_final=w.motion_final, gating_widths=w.gating,
            disp_head_hidden=w.disp_head_hidden, disp_head_pwconv1_widths=w.disp_head_pwconv1, mask_widths=w.mask)
        self.sam = SpatialAttentionExtractor()
        self.cam = ChannelAttentionEnhancement(w.cnet[1], w.cam_mid)
        self.proj_cmb = nn.Conv2d(d[0], cfg.concat_channel // 2, kernel_size=1, padding=0)
        self.cnet = ContextNetSharedBackbone(d[0], w.cnet)
        self.stem_2 = nn.Sequential(
            BasicConv(3, w.stem_2[0], norm="IN", kernel_size=3, stride=2, padding=1),
            nn.Conv2d(w.stem_2[0], w.stem_2[1], 3, 1, 1, bias=False), nn.InstanceNorm2d(w.stem_2[1]), nn.ReLU())
        s = w.spx_2_gru
        self.spx_2_gru = Conv2x(s[0], s[1], deconv=True, norm=None, rem_channels=s[2], conv2_out_channels=s[3])
        self.spx_gru = nn.Sequential(nn.ConvTranspose2d(s[3], 9, kernel_size=4, stride=2, padding=1))
        self.corr_feature_att = ForwardHelper([
            BasicConv(cfg.concat_channel + cfg.cv_group, c, is_3d=True, kernel_size=3, padding=1),
            BasicConv(c, c, is_3d=True, kernel_size=3, padding=1),
            FeatureAtt(c, d[0])])
        self.cost_agg = FFSHourglass(c, d, cfg.max_disparity, _resolve_layout(cfg))
        self.classifier = ForwardHelper([nn.Conv3d(c, 1, kernel_size=3, padding=1)])

    # ----------------------------------------------------------------- checkpoints
    def ignored_keys(self) -> frozenset:
        """Checkpoint keys that belong to never-executed legacy modules (plus TAO's `dx` buffer)."""
        return dead_keys(self.widths.volume_dim, tuple(self.feature.d_out), tuple(self.cfg.hidden_dims),
                         self.cfg.max_disparity) | OPTIONAL_KEYS

    def load_upstream_state_dict(self, state_dict: Mapping[str, torch.Tensor], strict: bool = True):
        """Load research-checkpoint (upstream-named) weights, dropping only the dead/optional keys."""
        ignored = self.ignored_keys()
        kept: Dict[str, torch.Tensor] = {k: v for k, v in state_dict.items() if k not in ignored}
        return self.load_state_dict(kept, strict=strict)

    # ----------------------------------------------------------------- forward
    def upsample_disp(self, disp: torch.Tensor, mask_feat_4: torch.Tensor, stem_2x: torch.Tensor) -> torch.Tensor:
        spx = F.softmax(self.spx_gru(self.spx_2_gru(mask_feat_4, stem_2x)), dim=1)
        return context_upsample(disp * 4.0, spx).unsqueeze(1)

    def _autocast(self, x: torch.Tensor):
        if self.cfg.mixed_precision and x.is_cuda:
            return torch.autocast("cuda", dtype=torch.float16)
        return nullcontext()

    def forward_padded(self, left: torch.Tensor, right: torch.Tensor, iters: int, test_mode: bool):
        cfg = self.cfg
        b = left.shape[0]
        with self._autocast(left):
            feats = self.feature(torch.cat([left, right], dim=0))
            fl = [f[:b] for f in feats]
            fr = [f[b:] for f in feats]
            stem_2x = self.stem_2(left)
            gwc = build_gwc_volume(fl[0], fr[0], self.max_disp, cfg.cv_group, normalize=cfg.gwc_feature_normalize)
            concat = build_concat_volume(self.proj_cmb(fl[0]), self.proj_cmb(fr[0]), self.max_disp)
            volume = torch.cat([gwc.to(concat.dtype), concat], dim=1)
            volume = self.corr_feature_att(volume, fl[0])
            volume = self.cost_agg(volume, fl)
            prob = F.softmax(self.classifier(volume).squeeze(1), dim=1)
            init_disp = disparity_regression(prob, self.max_disp)
            net, inp = self.cnet(fl[0])
            net = torch.tanh(net)
            inp = torch.relu(inp)
            inp = self.cam(inp) * inp
            att = self.sam(inp)
        geo_fn = CombinedGeoEncodingVolume(fl[0].float(), fr[0].float(), volume.float(), cfg.corr_levels,
                                           cfg.corr_radius, low_memory=bool(cfg.low_memory))
        _, _, h, w = fl[0].shape
        coords = torch.arange(w, dtype=torch.float32, device=left.device).reshape(1, 1, w, 1).repeat(b, h, 1, 1)
        disp = init_disp.float()
        net_list, preds = [net], []
        mask_feat = None
        for _ in range(iters):
            # no gradient through the recurrence of disp (RAFT-Stereo convention)
            disp = disp.detach()
            geo_feat = geo_fn(disp, coords)
            with self._autocast(left):
                net_list, mask_feat, delta = self.update_block(net_list, [inp], geo_feat, disp, [att])
            disp = disp + delta.float()
            if not test_mode:
                preds.append(self.upsample_disp(disp, mask_feat.float(), stem_2x.float()))
        if test_mode:
            return self.upsample_disp(disp, mask_feat.float(), stem_2x.float())
        return init_disp, preds
