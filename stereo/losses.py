"""Training losses for FoundationStereo / FastFoundationStereo (the TAO `SequenceLoss`, written out).

With M = valid ∧ finite(gt) ∧ 0 < gt < max_disparity (full resolution) and N iterative predictions:

    loss = mean_{M/4} smoothL1(init_disp, gt↓4 / 4)  +  Σ_{i=0}^{N-1} w_i · mean_M |pred_i − gt|
    w_i  = (γ^(15/(N−1)))^(N−1−i)          (N = 1 → w_0 = 1)

`init_disp` is the 1/4-resolution disparity regressed from the cost volume, in 1/4-resolution pixels; the
GT and M are nearest-downsampled to its size (M↓4), and the GT is divided by 4 to match its units. The
weights give the last iteration 1 and the first γ^15 ≈ 0.21 whatever N is. Means are pooled over every
scored pixel of the batch. TAO keeps |gt| < max_disparity; we also drop gt ≤ 0 and non-finite GT, as the
metrics do. A batch without any scored pixel gives 0 (not NaN) that still back-propagates (zero grads).
A NaN/inf *prediction* anywhere makes the loss NaN on purpose: the trainer reports that as a failure.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from stereo.metrics import valid_mask

INIT_SCALE = 4  # init_disp lives at 1/4 resolution


def _as_b1hw(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.dim() == 3:
        x = x[:, None]
    if x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f"{name} has shape {tuple(x.shape)}; expected [B,1,H,W] or [B,H,W]")
    return x


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # Multiplying (not torch.where) keeps a NaN prediction visible; clamp avoids 0/0 on an empty mask.
    return (values * mask).sum() / mask.sum().clamp(min=1)


def sequence_weights(n: int, gamma: float = 0.9) -> list[float]:
    """w_i = (γ^(15/(N−1)))^(N−1−i) for i = 0..N−1; [1.0] for N = 1."""
    if n < 1:
        raise ValueError(f"need at least one prediction, got {n}")
    if not 0 < gamma <= 1:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}; TAO's loss_gamma default is 0.9")
    if n == 1:
        return [1.0]
    adjusted = gamma ** (15.0 / (n - 1))
    return [adjusted ** (n - 1 - i) for i in range(n)]


def _scored(gt: torch.Tensor, valid: torch.Tensor | None, max_disparity: float):
    gt = _as_b1hw(gt, "gt")
    mask = valid_mask(gt, valid, max_disparity)[:, None]
    # Invalid GT may be inf/NaN: replace it so masked products and their gradients stay finite.
    gt_safe = torch.where(mask, gt, torch.zeros_like(gt))
    return gt_safe, mask.to(gt_safe.dtype)


def sequence_loss(init_disp: torch.Tensor, preds: Sequence[torch.Tensor], gt: torch.Tensor,
                  valid: torch.Tensor | None, max_disparity: float, gamma: float = 0.9
                  ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total training loss and its detached parts {'init', 'sequence', 'valid_pixels'}."""
    preds = list(preds)
    weights = sequence_weights(len(preds), gamma)
    gt_safe, mask = _scored(gt, valid, max_disparity)
    h, w = gt_safe.shape[-2:]

    init_disp = _as_b1hw(init_disp, "init_disp")
    h4, w4 = init_disp.shape[-2:]
    if h4 not in (h // INIT_SCALE, -(-h // INIT_SCALE)) or w4 not in (w // INIT_SCALE, -(-w // INIT_SCALE)):
        raise ValueError(f"init_disp is {h4}x{w4} but gt is {h}x{w}; init_disp must be at 1/{INIT_SCALE} "
                         "resolution (the model's first output in training mode)")
    gt_q = F.interpolate(gt_safe, size=(h4, w4), mode="nearest") / INIT_SCALE
    mask_q = F.interpolate(mask, size=(h4, w4), mode="nearest")
    init_term = _masked_mean(F.smooth_l1_loss(init_disp, gt_q.to(init_disp.dtype), reduction="none"), mask_q)

    seq_term = init_term.new_zeros(())
    for i, (wi, pred) in enumerate(zip(weights, preds)):
        pred = _as_b1hw(pred, f"preds[{i}]")
        if pred.shape != gt_safe.shape:
            raise ValueError(f"preds[{i}] has shape {tuple(pred.shape)} but gt has {tuple(gt_safe.shape)}; "
                             "iterative predictions are full resolution")
        seq_term = seq_term + wi * _masked_mean((pred - gt_safe).abs(), mask)

    total = init_term + seq_term
    parts = {"init": init_term.detach(), "sequence": seq_term.detach(),
             "valid_pixels": mask.sum().detach()}
    return total, parts


def validation_loss(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None,
                    max_disparity: float) -> torch.Tensor:
    """Smooth-L1 over scored pixels at full resolution (TAO's val loss: one prediction, no init term)."""
    gt_safe, mask = _scored(gt, valid, max_disparity)
    pred = _as_b1hw(pred, "pred")
    if pred.shape != gt_safe.shape:
        raise ValueError(f"pred has shape {tuple(pred.shape)} but gt has {tuple(gt_safe.shape)}")
    return _masked_mean(F.smooth_l1_loss(pred, gt_safe.to(pred.dtype), reduction="none"), mask)
