"""Synthetic stereo pairs with exact disparity and occlusion, written in the real datasets' layouts.

A scene is a stack of planar layers: a slanted background covering the whole view and a few occluding
rectangles/ellipses, fronto-parallel or slanted. Layer k has disparity d_k(u, y) = a_k u + b_k y + c_k in
left coordinates and a texture painted in left coordinates (u, y), so both views are renderings of the
same surfaces:

* left pixel (x, y) shows the layer of largest disparity (nearest) covering (x, y);
* right pixel (x_r, y) shows layer k at the u solving u - d_k(u, y) = x_r, i.e.
  u = (x_r + b_k y + c_k) / (1 - a_k), again the nearest covering layer winning;
* a left pixel is non-occluded iff no other layer is nearer at x_r = x - d in the right view (and x_r
  is inside the image).

Textures are multi-octave value noise (coarse-to-fine), so every pixel is matchable. Deterministic:
scene i of a run is drawn from numpy Generator(seed, i).
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from stereo.data.formats.images import write_image
from stereo.data.formats.masks import write_nocc_mask
from stereo.data.formats.pfm import write_pfm
from stereo.data.formats.png16 import CRESTEREO_SCALE, KITTI_SCALE, write_png16_disparity
from stereo.data.formats.rgb_disparity import write_rgb_disparity

LAYOUTS = ("fsd", "crestereo", "kitti2015", "kitti2012", "middlebury", "eth3d", "generic")
MIDDLEBURY_SCALE = -0.003922  # a real Middlebury PFM scale: only its sign (little-endian) matters
_OCTAVES = ((48, 1.0), (24, 0.6), (12, 0.4), (6, 0.25))  # (period px, amplitude)
_MAX_SLOPE = 0.25  # |a|, |b| stay well below 1 so u -> u - d(u) is monotonic (no self-occlusion)


@dataclass
class Layer:
    a: float
    b: float
    c: float
    shape: str  # "plane" (covers everything), "rect" or "ellipse"
    cx: float = 0.0
    cy: float = 0.0
    rx: float = 0.0
    ry: float = 0.0
    texture: np.ndarray | None = None  # [H, W_t, 3] over u in [U0, U0 + W_t)

    def disparity(self, u: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.a * u + self.b * y + self.c

    def covers(self, u: np.ndarray, y: np.ndarray) -> np.ndarray:
        if self.shape == "plane":
            return np.ones(np.broadcast(u, y).shape, dtype=bool)
        du, dy = (u - self.cx) / self.rx, (y - self.cy) / self.ry
        if self.shape == "rect":
            return (np.abs(du) <= 1) & (np.abs(dy) <= 1)
        return du * du + dy * dy <= 1


@dataclass
class Scene:
    left: np.ndarray  # float32 [H, W, 3] 0..255
    right: np.ndarray
    disp: np.ndarray  # float32 [H, W], left view, dense and exact
    nocc: np.ndarray  # bool [H, W], True where the left pixel is visible in the right view
    layers: list


_U0 = -4.0  # textures start a few px left of the image so bilinear lookups never leave them


def _noise_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    tex = np.zeros((h, w, 3), np.float32)
    for period, amp in _OCTAVES:
        grid = rng.uniform(-1, 1, (h // period + 3, w // period + 3, 3)).astype(np.float32)
        up = cv2.resize(grid, ((grid.shape[1] - 1) * period, (grid.shape[0] - 1) * period),
                        interpolation=cv2.INTER_CUBIC)
        tex += amp * up[:h, :w]
    tint = rng.uniform(60, 190, 3).astype(np.float32)
    return np.clip(tint + 60.0 * tex, 0, 255)


def _random_layers(rng: np.random.Generator, h: int, w: int, d_max: float) -> list[Layer]:
    # background: disparity drawn at the left/right and top/bottom edges, slopes clipped
    d_lo, d_hi = 0.06 * d_max + 0.5, 0.3 * d_max + 1.0
    a = float(np.clip((rng.uniform(d_lo, d_hi) - rng.uniform(d_lo, d_hi)) / w, -_MAX_SLOPE, _MAX_SLOPE))
    b = float(np.clip((rng.uniform(d_lo, d_hi) - rng.uniform(d_lo, d_hi)) / h, -_MAX_SLOPE, _MAX_SLOPE))
    bg_mid = rng.uniform(d_lo, d_hi)
    c = float(bg_mid - a * w / 2 - b * h / 2)
    corners = [a * x + b * y + c for x in (0, w + d_max) for y in (0, h)]
    c += max(0.0, d_lo - min(corners))  # keep the background in front of the camera everywhere
    layers = [Layer(a, b, c, "plane")]
    bg_top = max(a * x + b * y + c for x in (0, w + d_max) for y in (0, h))
    for _ in range(int(rng.integers(2, 5))):
        rx, ry = rng.uniform(0.08, 0.25) * w, rng.uniform(0.12, 0.3) * h
        cx, cy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.15, 0.85) * h
        dc = rng.uniform(bg_top + 1.0, max(bg_top + 1.5, 0.85 * d_max))
        if rng.random() < 0.5:
            oa = ob = 0.0
        else:  # slant bounded so the layer stays in front of the background and below d_max
            room = min(dc - bg_top - 0.5, 0.9 * d_max - dc)
            oa = float(rng.uniform(-1, 1) * min(_MAX_SLOPE, max(room, 0.0) / rx))
            ob = float(rng.uniform(-1, 1) * min(_MAX_SLOPE, max(room, 0.0) / ry))
        layers.append(Layer(oa, ob, float(dc - oa * cx - ob * cy), str(rng.choice(["rect", "ellipse"])),
                            cx, cy, rx, ry))
    return layers


def _nearest(layers: list[Layer], u_of, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel: index of the nearest covering layer, its u and its disparity; `u_of(layer)` gives u."""
    best_d = np.full(y.shape, -np.inf)
    best_k = np.zeros(y.shape, np.int64)
    best_u = np.zeros(y.shape)
    for k, layer in enumerate(layers):
        u = u_of(layer)
        d = layer.disparity(u, y)
        win = layer.covers(u, y) & (d > best_d)
        best_d = np.where(win, d, best_d)
        best_k = np.where(win, k, best_k)
        best_u = np.where(win, u, best_u)
    return best_k, best_u, best_d


def _shade(layers: list[Layer], k: np.ndarray, u: np.ndarray, y: np.ndarray) -> np.ndarray:
    img = np.zeros(k.shape + (3,), np.float32)
    map_y = y.astype(np.float32)
    for i, layer in enumerate(layers):
        sel = k == i
        if not sel.any():
            continue
        sampled = cv2.remap(layer.texture, (u - _U0).astype(np.float32), map_y, cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REFLECT_101)
        img[sel] = sampled[sel]
    return img


def make_scene(height: int, width: int, max_disparity: float, rng: np.random.Generator) -> Scene:
    """Render one scene; disparities stay within [~0.06, 0.9] * max_disparity."""
    h, w = height, width
    layers = _random_layers(rng, h, w, float(max_disparity))
    tex_w = int(w + max_disparity - _U0 + 8)
    for layer in layers:
        layer.texture = _noise_texture(rng, h, tex_w)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)

    k_l, u_l, d_l = _nearest(layers, lambda L: x, y)
    k_r, u_r, _ = _nearest(layers, lambda L: (x + L.b * y + L.c) / (1.0 - L.a), y)

    # occlusion: is some other layer nearer than the visible one at x_r = x - d in the right view?
    x_r = x - d_l
    _, _, d_at_xr = _nearest(layers, lambda L: (x_r + L.b * y + L.c) / (1.0 - L.a), y)
    nocc = (x_r >= 0) & (d_at_xr <= d_l + 1e-6)
    return Scene(_shade(layers, k_l, u_l, y), _shade(layers, k_r, u_r, y), d_l.astype(np.float32), nocc, layers)


def _grey(img: np.ndarray) -> np.ndarray:
    return img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _gt_limit(layout: str) -> float:
    """Largest disparity the layout's GT encoding can store."""
    if layout.startswith("kitti"):
        return 65535 / KITTI_SCALE
    if layout == "crestereo":
        return 65535 / CRESTEREO_SCALE
    return float("inf")


def _write_sample(root: Path, layout: str, i: int, scene: Scene, columns: int) -> list[Path]:
    """Write sample i under `root`; returns the annotation line's paths (left, right[, disp[, mask]])."""
    name = f"{i:06d}"
    if layout == "fsd":
        paths = [root / "fsd/left/rgb" / f"{name}.png", root / "fsd/right/rgb" / f"{name}.png",
                 root / "fsd/left/disparity" / f"{name}.png"]
        write_rgb_disparity(paths[2], scene.disp)
    elif layout == "crestereo":
        base = root / "crestereo/tree"
        paths = [base / f"{name}_left.png", base / f"{name}_right.png", base / f"{name}_left.disp.png"]
        write_png16_disparity(paths[2], scene.disp, CRESTEREO_SCALE)
    elif layout == "kitti2015":
        t = root / "training"
        paths = [t / "image_2" / f"{name}_10.png", t / "image_3" / f"{name}_10.png",
                 t / "disp_occ_0" / f"{name}_10.png"]
        write_png16_disparity(paths[2], scene.disp, KITTI_SCALE)
        write_png16_disparity(t / "disp_noc_0" / f"{name}_10.png", np.where(scene.nocc, scene.disp, 0), KITTI_SCALE)
    elif layout == "kitti2012":
        t = root / "training"
        paths = [t / "colored_0" / f"{name}_10.png", t / "colored_1" / f"{name}_10.png",
                 t / "disp_occ" / f"{name}_10.png"]
        write_png16_disparity(paths[2], scene.disp, KITTI_SCALE)
        write_png16_disparity(t / "disp_noc" / f"{name}_10.png", np.where(scene.nocc, scene.disp, 0), KITTI_SCALE)
        write_image(t / "image_0" / f"{name}_10.png", _grey(scene.left))  # KITTI 2012 also ships grey pairs
        write_image(t / "image_1" / f"{name}_10.png", _grey(scene.right))
    elif layout == "middlebury":
        d = root / "trainingH" / f"scene{i:03d}"
        paths = [d / "im0.png", d / "im1.png", d / "disp0GT.pfm", d / "mask0nocc.png"]
        # alternate byte orders and mask encodings so both variants are exercised
        write_pfm(paths[2], scene.disp, scale=MIDDLEBURY_SCALE if i % 2 == 0 else 1.0)
        write_nocc_mask(paths[3], scene.nocc, palette=(i % 2 == 0))
    elif layout == "eth3d":
        d, g = root / "two_view_training" / f"scene{i:03d}", root / "two_view_training_gt" / f"scene{i:03d}"
        paths = [d / "im0.png", d / "im1.png", g / "disp0GT.pfm", g / "mask0nocc.png"]
        write_pfm(paths[2], scene.disp, scale=-1.0)
        write_nocc_mask(paths[3], scene.nocc)
    elif layout == "generic":
        paths = [root / "generic/left" / f"{name}.png", root / "generic/right" / f"{name}.png"]
        if columns == 3:
            paths.append(root / "generic/disparity" / f"{name}.pfm")
            write_pfm(paths[2], scene.disp)
    else:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    grey = layout == "eth3d"  # ETH3D images are greyscale on disk
    write_image(paths[0], _grey(scene.left) if grey else scene.left)
    write_image(paths[1], _grey(scene.right) if grey else scene.right)
    return paths


def generate(out_dir: str | os.PathLike, layout: str = "fsd", n: int = 4, height: int = 64, width: int = 128,
             max_disparity: int = 32, seed: int = 0, columns: int = 3) -> Path:
    """Write `n` scenes in `layout` under `out_dir` and the annotation file `out_dir/<layout>.txt`
    (paths relative to it; Middlebury/ETH3D lines carry the nocc mask). `columns` only applies to
    `generic` (2 = no GT). Returns the annotation file."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if layout == "generic" and columns not in (2, 3):
        raise ValueError(f"generic layout writes 2 or 3 columns, got columns={columns}")
    if n < 1 or height < 8 or width < 8 or max_disparity < 2:
        raise ValueError(f"need n >= 1, height/width >= 8 and max_disparity >= 2; got n={n}, "
                         f"{height}x{width}, max_disparity={max_disparity}")
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    d_max = min(float(max_disparity), _gt_limit(layout) / 0.9)
    lines = []
    for i in range(n):
        scene = make_scene(height, width, d_max, np.random.default_rng([seed, i]))
        paths = _write_sample(root, layout, i, scene, columns)
        lines.append(" ".join(p.relative_to(root).as_posix() for p in paths))
    ann = root / f"{layout}.txt"
    ann.write_text("\n".join(lines) + "\n")
    return ann


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stereo.data.synthetic",
                                     description="Write synthetic stereo data in a real dataset's layout.")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--layout", default="fsd", choices=LAYOUTS)
    parser.add_argument("--n", type=int, default=16, help="number of stereo pairs")
    parser.add_argument("--height", type=int, default=320)
    parser.add_argument("--width", type=int, default=736)
    parser.add_argument("--max-disparity", type=int, default=192, help="disparities stay below 0.9x this")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--columns", type=int, default=3, choices=(2, 3), help="generic layout only")
    args = parser.parse_args(argv)
    ann = generate(args.out, args.layout, args.n, args.height, args.width, args.max_disparity, args.seed,
                   args.columns)
    print(f"wrote {args.n} {args.layout} samples; annotation file: {ann}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
