"""Disparity pictures: colourised maps, error maps and the left | prediction | error strip.

All functions take numpy arrays (disparity `[H,W]` float, images `[H,W,3]` RGB 0..255) and return uint8
RGB; `write_png` writes atomically. Invalid pixels (non-finite disparity, or outside `valid`) are black.
Colormaps come from matplotlib (`turbo` for disparity as in TAO's deploy inference, `inferno` for errors).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

DISPARITY_CMAP = "turbo"
ERROR_CMAP = "inferno"


def _colormap(name: str):
    import matplotlib  # lazy: only the visualising actions pay for the import

    try:
        return matplotlib.colormaps[name]
    except KeyError:
        raise ValueError(f"unknown colormap {name!r}; use a matplotlib name such as 'turbo' or 'inferno'") from None


def _as_hw(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 2:
        raise ValueError(f"{name} must be [H,W] (or [1,H,W]), got shape {x.shape}")
    return x.astype(np.float32, copy=False)


def colorize(values: np.ndarray, vmin: float | None = None, vmax: float | None = None,
             cmap: str = DISPARITY_CMAP, mask: np.ndarray | None = None) -> np.ndarray:
    """uint8 RGB [H,W,3]: `values` scaled from [vmin, vmax] (default: the finite min/max) through `cmap`."""
    values = _as_hw(values, "values")
    ok = np.isfinite(values)
    if mask is not None:
        ok &= _as_hw(mask, "mask") > 0
    finite = values[ok]
    lo = float(finite.min()) if vmin is None and finite.size else float(vmin or 0.0)
    hi = float(finite.max()) if vmax is None and finite.size else float(vmax if vmax is not None else 1.0)
    scaled = np.clip((np.where(ok, values, lo) - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    rgb = (_colormap(cmap)(scaled)[..., :3] * 255.0 + 0.5).astype(np.uint8)
    rgb[~ok] = 0
    return rgb


def colorize_disparity(disp: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """Disparity in `turbo`, 0 .. vmax (default: the largest finite value)."""
    return colorize(disp, vmin=0.0, vmax=vmax, cmap=DISPARITY_CMAP)


def error_image(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None,
                max_error: float = 5.0) -> np.ndarray:
    """|pred - gt| in `inferno`, saturating at `max_error` px; pixels without GT are black."""
    pred, gt = _as_hw(pred, "pred"), _as_hw(gt, "gt")
    if pred.shape != gt.shape:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} must have the same size")
    ok = np.isfinite(gt) & (gt > 0)
    if valid is not None:
        ok &= _as_hw(valid, "valid") > 0
    return colorize(np.abs(pred - gt), vmin=0.0, vmax=max_error, cmap=ERROR_CMAP, mask=ok)


def side_by_side(left: np.ndarray, pred: np.ndarray, gt: np.ndarray | None = None,
                 valid: np.ndarray | None = None, vmax: float | None = None) -> np.ndarray:
    """left | prediction | error (the error panel only when `gt` is given); one colour scale for pred."""
    left = np.asarray(left)
    if left.ndim == 3 and left.shape[0] == 3 and left.shape[-1] != 3:
        left = left.transpose(1, 2, 0)  # CHW tensor layout -> HWC
    if left.ndim != 3 or left.shape[-1] != 3:
        raise ValueError(f"left must be an RGB image [H,W,3], got shape {left.shape}")
    left = np.clip(left, 0, 255).astype(np.uint8)
    pred = _as_hw(pred, "pred")
    if pred.shape != left.shape[:2]:
        raise ValueError(f"prediction {pred.shape} and left image {left.shape[:2]} must have the same size")
    if vmax is None and gt is not None:
        g = _as_hw(gt, "gt")
        finite = g[np.isfinite(g) & (g > 0)]
        vmax = float(finite.max()) if finite.size else None
    panels = [left, colorize_disparity(pred, vmax=vmax)]
    if gt is not None:
        panels.append(error_image(pred, gt, valid))
    return np.concatenate(panels, axis=1)


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> Path:
    """Write an RGB uint8 image as PNG atomically (parent folders are created)."""
    import cv2

    from stereo.atomic_io import atomic_write_bytes

    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"write_png expects uint8 [H,W,3] RGB, got {rgb.dtype} {rgb.shape}")
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a PNG for {path}")
    return atomic_write_bytes(path, buf.tobytes())
