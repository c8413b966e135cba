"""Left-view disparity -> right-view disparity by forward warping, exact for piecewise-planar scenes.

Used by the left/right-swapping flip: after mirroring, the new left image is the old right one, whose
disparity the datasets do not ship. A left pixel x with disparity d lands at x_r = x - d in the right
view. Between two neighbouring left pixels on the same surface (|d1 - d0| < 1) the surface is linear,
so every integer x_r between their landing points gets the linearly interpolated disparity; where
several surfaces land, the largest disparity (nearest) wins. Right pixels reached by no surface (seen
only by the right camera) stay invalid.
"""
from __future__ import annotations

import numpy as np

_SAME_SURFACE = 1.0  # a jump >= 1 px between neighbours is a depth edge, not a slope


def left_to_right_disparity(disp: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`[H, W]` left disparity and validity -> right-view disparity (0 where invalid) and validity."""
    h, w = disp.shape
    d0, d1 = disp[:, :-1].astype(np.float64), disp[:, 1:].astype(np.float64)
    ok = (valid[:, :-1] > 0) & (valid[:, 1:] > 0) & (np.abs(d1 - d0) < _SAME_SURFACE)
    ys, xs = np.nonzero(ok)
    d0, d1 = d0[ys, xs], d1[ys, xs]
    r0 = xs - d0
    r1 = xs + 1 - d1  # > r0 because d1 - d0 < 1; the span r1 - r0 < 2 holds at most two integers
    out = np.full(h * w, -np.inf)
    for k in (0, 1):
        c = np.ceil(r0 - 1e-9) + k
        hit = (c <= r1 + 1e-9) & (c >= 0) & (c < w)
        t = (c[hit] - r0[hit]) / (r1[hit] - r0[hit])
        d = d0[hit] + t * (d1[hit] - d0[hit])
        np.maximum.at(out, ys[hit] * w + c[hit].astype(np.int64), d)
    out = out.reshape(h, w)
    # At a depth edge the nearer surface ends somewhere within one left pixel of its last sample, so
    # right pixels within 1 px of that sample's landing point may belong to it: where a farther surface
    # won there, the value is unreliable and is dropped.
    disp64 = disp.astype(np.float64)
    pair_ok = (valid[:, :-1] > 0) & (valid[:, 1:] > 0)
    ey, ex = np.nonzero(pair_ok & (np.abs(disp64[:, 1:] - disp64[:, :-1]) >= _SAME_SURFACE))
    near_right = disp64[ey, ex + 1] > disp64[ey, ex]
    xn = ex + near_right
    dn = disp64[ey, xn]
    r = xn - dn
    ambiguous = np.full(h * w, -np.inf)
    for c in (np.floor(r), np.ceil(r)):
        hit = (np.abs(c - r) < 1) & (c >= 0) & (c < w)
        np.maximum.at(ambiguous, ey[hit] * w + c[hit].astype(np.int64), dn[hit])
    out[out < ambiguous.reshape(h, w) - 0.5] = -np.inf
    valid_r = np.isfinite(out)
    return np.where(valid_r, out, 0.0).astype(np.float32), valid_r.astype(np.float32)
