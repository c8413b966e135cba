"""FoundationStereo (Wen et al. 2025), NVlabs and TAO variants, checkpoint-compatible module tree.

Top-level names and registration order follow NVlabs `FoundationStereo` (`cnet`, `update_block`, `sam`,
`cam`, `context_zqr_convs`, `feature`, `proj_cmb`, `stem_2`, `stem_4`, `spx_2_gru`, `spx_gru`,
`corr_stem`, `corr_feature_att`, `cost_agg`, `classifier`), so `state_dict()` equals a published checkpoint.
Modules the forward never runs (`context_zqr_convs`, `stem_4`, `cnet.down`, `cnet.norm`, DPT
`refinenet4.resConfUnit1`, DINOv2 `mask_token`) are registered for strict loading; `DEAD_KEY_PREFIXES`
lists them.

Variant `tao` (TAO FoundationStereo, foundation_stereo.md §2.5) differs in InstanceNorm (no state) where
NVlabs has BatchNorm (FeatureAtt hidden convs, corr_stem.1, classifier.0, cnet.conv2), a 1x1
ConvTranspose3d in `cost_agg.agg_1.0`, `spx_2_gru.conv2` as a ConvTranspose2d without activation, and
the disparity transformer after the x4 upsample. TAO checkpoints load after
`stereo.checkpoints.remap_fs.remap_tao_fs_to_nvlabs`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stereo.config.model import ModelConfig
from stereo.models.backbones.pretrained import load_stereo_backbones
from stereo.models.base import StereoModel
from stereo.models.fs.context import ContextNetDino
from stereo.models.fs.feature import FSFeature
from stereo.models.fs.hourglass import FSHourglass
from stereo.models.layers.attention import ChannelAttentionEnhancement, FeatureAtt, SpatialAttentionExtractor
from stereo.models.layers.conv import BasicConv, Conv2x, ResnetBasicBlock3D
from stereo.models.layers.cost_volume import build_concat_volume, build_gwc_volume, disparity_regression
from stereo.models.layers.geometry import CombinedGeoEncodingVolume
from stereo.models.layers.update import BasicSelectiveMultiUpdateBlock
from stereo.models.layers.upsample import context_upsample

#: State-dict prefixes of modules that exist only so NVlabs/TAO checkpoints load strictly.
DEAD_KEY_PREFIXES = (
    "context_zqr_convs.", "stem_4.", "cnet.down.", "cnet.norm.",
    "feature.dino.depth_anything.depth_head.scratch.refinenet4.resConfUnit1.",
    "feature.dino.depth_anything.pretrained.mask_token",
)

_AUTO_LAYOUT = {"nvlabs": "standard", "tao": "tao_view"}


def resolve_attention_layout(variant: str, layout: str) -> str:
    """`auto` -> the layout the variant's checkpoints were trained with (nvlabs: standard, tao: tao_view)."""
    return _AUTO_LAYOUT[variant] if layout == "auto" else layout


def _stem(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(BasicConv(c_in, c_out, norm="IN", kernel_size=3, stride=2, padding=1),
                         nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.InstanceNorm2d(c_out), nn.ReLU())


class FoundationStereo(StereoModel):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        _validate(cfg)
        self.cfg = cfg
        self.variant = cfg.variant
        self.attention_layout = resolve_attention_layout(cfg.variant, cfg.attention_layout)
        self.train_iters, self.valid_iters = cfg.train_iters, cfg.valid_iters
        self.max_disp = cfg.max_disparity
        self.n_gru_layers = cfg.n_gru_layers
        norm = "bn" if cfg.variant == "nvlabs" else "IN"
        vd, hidden = cfg.volume_dim, cfg.hidden_dims[0]
        # Built first (its widths size everything else) but registered in NVlabs order below.
        feature = FSFeature(cfg.encoder, cfg.cnn_backbone, cfg.stereo_backbone.use_bn,
                            cfg.stereo_backbone.use_clstoken)
        c4 = feature.d_out[0]

        self.cnet = ContextNetDino(feature.vit_dim, cfg.hidden_dims, cfg.hidden_dims, cfg.n_downsample,
                                   conv2_norm=norm)
        cor_planes = cfg.corr_levels * (2 * cfg.corr_radius + 1) * (vd + 1)
        self.update_block = BasicSelectiveMultiUpdateBlock(
            cor_planes=cor_planes, hidden_dim=hidden, n_gru_layers=cfg.n_gru_layers,
            context_dims=[hidden] * 3, mask_widths=(64, 32))
        self.sam = SpatialAttentionExtractor()
        self.cam = ChannelAttentionEnhancement(hidden, cfg.cam_mid_channels)
        self.context_zqr_convs = nn.ModuleList(
            nn.Conv2d(cfg.hidden_dims[i], cfg.hidden_dims[i] * 3, 3, padding=1) for i in range(cfg.n_gru_layers))
        self.feature = feature
        self.proj_cmb = nn.Conv2d(c4, cfg.concat_channel // 2, 1)
        self.stem_2 = _stem(3, 32)
        self.stem_4 = _stem(32, 48)
        self.spx_2_gru = Conv2x(32, 32, deconv=True, norm=None)
        if cfg.variant == "tao":
            self.spx_2_gru.conv2 = BasicConv(64, 64, deconv=True, norm=None, relu=False,
                                             kernel_size=3, stride=1, padding=1)
        self.spx_gru = nn.Sequential(nn.ConvTranspose2d(64, 9, kernel_size=4, stride=2, padding=1))
        self.corr_stem = nn.Sequential(
            nn.Conv3d(cfg.cv_group + cfg.concat_channel, vd, kernel_size=1),
            BasicConv(vd, vd, is_3d=True, norm=norm, kernel_size=3, padding=1),
            ResnetBasicBlock3D(vd, vd), ResnetBasicBlock3D(vd, vd))
        self.corr_feature_att = FeatureAtt(vd, c4, norm=norm)
        self.cost_agg = FSHourglass(vd, feature.d_out, cfg.max_disparity, cfg.variant, self.attention_layout)
        self.classifier = nn.Sequential(
            BasicConv(vd, vd // 2, is_3d=True, norm=norm, kernel_size=3, padding=1),
            ResnetBasicBlock3D(vd // 2, vd // 2),
            nn.Conv3d(vd // 2, 1, kernel_size=7, padding=3))
        # ImageNet / DAv2 initialisation (TAO applies these at construction too); a full FS checkpoint
        # loaded afterwards overrides them.
        load_stereo_backbones(self, cfg.stereo_backbone.depth_anything_v2_pretrained_path,
                              cfg.stereo_backbone.edgenext_pretrained_path)

    def upsample_disp(self, disp: torch.Tensor, mask_feat_4: torch.Tensor, stem_2x: torch.Tensor) -> torch.Tensor:
        """Convex x4 upsampling of a 1/4-res disparity (scaled to full-res px) -> (B, 1, H, W)."""
        weights = F.softmax(self.spx_gru(self.spx_2_gru(mask_feat_4, stem_2x)), dim=1)
        return context_upsample(disp * 4.0, weights).unsqueeze(1)

    def forward_padded(self, left: torch.Tensor, right: torch.Tensor, iters: int, test_mode: bool):
        b = left.shape[0]
        d4 = self.max_disp // 4
        amp = torch.autocast(device_type=left.device.type, enabled=self.cfg.mixed_precision and left.is_cuda)
        with amp:
            pyramid, vit_feat = self.feature(torch.cat([left, right], dim=0))
            f_left = [f[:b] for f in pyramid]
            f_right = [f[b:] for f in pyramid]
            vit_left = vit_feat[:b]
            stem_2x = self.stem_2(left)
            gwc = build_gwc_volume(f_left[0], f_right[0], d4, self.cfg.cv_group,
                                   normalize=self.cfg.gwc_feature_normalize)
            concat = build_concat_volume(self.proj_cmb(f_left[0]), self.proj_cmb(f_right[0]), d4)
            volume = self.corr_stem(torch.cat([gwc.to(concat.dtype), concat], dim=1))
            volume = self.corr_feature_att(volume, f_left[0])
            volume = self.cost_agg(volume, f_left)
            prob = F.softmax(self.classifier(volume).squeeze(1), dim=1)
            init_disp = disparity_regression(prob, d4)
            net, inp, att = self._context(left, vit_left)

        geo_fn = CombinedGeoEncodingVolume(f_left[0].float(), f_right[0].float(), volume.float(),
                                           num_levels=self.cfg.corr_levels, radius=self.cfg.corr_radius,
                                           low_memory=bool(self.cfg.low_memory))
        _, _, h, w = f_left[0].shape
        coords = torch.arange(w, dtype=torch.float32, device=left.device).reshape(1, 1, w, 1).repeat(b, h, 1, 1)
        disp = init_disp.float()
        preds: list[torch.Tensor] = []
        for itr in range(iters):
            disp = disp.detach()  # no gradient through the recurrence of disp (RAFT convention)
            geo_feat = geo_fn(disp, coords)
            with amp:
                net, mask_feat_4, delta = self.update_block(net, inp, geo_feat, disp, att)
            disp = disp + delta.float()
            if test_mode and itr < iters - 1:
                continue
            preds.append(self.upsample_disp(disp, mask_feat_4.float(), stem_2x.float()))
        if test_mode:
            return preds[-1]
        return init_disp, preds

    def _context(self, left: torch.Tensor, vit_left: torch.Tensor
                 ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        levels = self.cnet(left, vit_left, num_layers=self.n_gru_layers)
        net = [torch.tanh(x[0]) for x in levels]
        inp = [torch.relu(x[1]) for x in levels]
        inp = [self.cam(x) * x for x in inp]
        att = [self.sam(x) for x in inp]
        return net, inp, att


def _validate(cfg: ModelConfig) -> None:
    if cfg.variant not in _AUTO_LAYOUT:
        raise ValueError(f"model.variant={cfg.variant!r}; use one of {sorted(_AUTO_LAYOUT)}")
    if cfg.max_disparity % 32:
        raise ValueError(f"model.max_disparity={cfg.max_disparity} must be a multiple of 32 (D = max/4 passes "
                         "three stride-2 stages and a stride-4 patchify)")
    if len(cfg.hidden_dims) < cfg.n_gru_layers or len(set(cfg.hidden_dims)) != 1 or len(cfg.hidden_dims) != 3:
        raise ValueError(f"model.hidden_dims={list(cfg.hidden_dims)}: FoundationStereo needs three equal widths "
                         "(one per context level), e.g. [128, 128, 128]")
    if cfg.concat_channel % 2:
        raise ValueError(f"model.concat_channel={cfg.concat_channel} must be even (half per image)")
    if cfg.volume_dim % 2 or cfg.volume_dim % 4:
        raise ValueError(f"model.volume_dim={cfg.volume_dim} must be a multiple of 4 (4 attention heads, "
                         "classifier at volume_dim/2)")
