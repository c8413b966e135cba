"""Portable Float Map (`.pfm`): Middlebury / ETH3D / SceneFlow disparity.

Layout: `PF` (3 channels) or `Pf` (1 channel), then `width height`, then a scale whose *sign* gives the
byte order (negative = little-endian) and whose magnitude is ignored (Middlebury writes e.g. -0.003922),
then float32 rows stored bottom-up. `inf` marks pixels without ground truth and is kept as is.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from stereo.errors import DataError

_MAX_HEADER = 256


def _read_header(fh, path: str | os.PathLike) -> tuple[int, int, int, str]:
    """Parse the four header tokens; returns (channels, height, width, numpy byte order)."""
    tokens: list[bytes] = []
    token = b""
    consumed = 0
    while len(tokens) < 4:
        ch = fh.read(1)
        consumed += 1
        if not ch or consumed > _MAX_HEADER:
            raise DataError(f"{path}: truncated or not a PFM header (expected 'PF'/'Pf', width, height, scale); "
                            "re-export the file as PFM")
        if ch.isspace():
            if token:
                tokens.append(token)
                token = b""
        else:
            token += ch
    # the scale token ended with exactly one whitespace byte, which was consumed above: data starts here
    kind, width, height, scale = tokens
    if kind not in (b"PF", b"Pf"):
        raise DataError(f"{path}: PFM magic is {kind!r}, expected b'PF' (3 channels) or b'Pf' (1 channel); "
                        "this is not a PFM file")
    try:
        w, h, s = int(width), int(height), float(scale)
    except ValueError:
        raise DataError(f"{path}: bad PFM header {b' '.join(tokens)!r}; expected '<width> <height>' and a "
                        "non-zero scale") from None
    if w <= 0 or h <= 0 or s == 0.0:
        raise DataError(f"{path}: bad PFM header width={w} height={h} scale={s}; all must be non-zero")
    return (3 if kind == b"PF" else 1), h, w, ("<" if s < 0 else ">")


def read_pfm_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) from the header only."""
    with open(path, "rb") as fh:
        _, h, w, _ = _read_header(fh, path)
    return h, w


def read_pfm(path: str | os.PathLike) -> np.ndarray:
    """A float32 `[H, W]` map, top row first; a 3-channel file yields its first channel."""
    with open(path, "rb") as fh:
        channels, h, w, order = _read_header(fh, path)
        count = h * w * channels
        data = np.fromfile(fh, dtype=order + "f4", count=count)
    if data.size != count:
        raise DataError(f"{path}: PFM holds {data.size} floats, header promises {h}x{w}x{channels}={count}; "
                        "the file is truncated, re-export it")
    img = data.reshape(h, w, channels)[::-1, :, 0]  # rows are stored bottom-up
    return np.ascontiguousarray(img, dtype=np.float32)


def write_pfm(path: str | os.PathLike, image: np.ndarray, scale: float = -1.0) -> Path:
    """Write a `[H, W]` (Pf) or `[H, W, 3]` (PF) float map; `scale < 0` little-endian, `> 0` big-endian."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"write_pfm needs [H, W] or [H, W, 3], got shape {image.shape}")
    if scale == 0.0:
        raise ValueError("write_pfm scale must be non-zero (its sign selects the byte order)")
    kind = b"PF" if image.ndim == 3 else b"Pf"
    h, w = image.shape[:2]
    order = "<" if scale < 0 else ">"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(kind + b"\n" + f"{w} {h}\n".encode() + f"{scale:g}\n".encode())
        fh.write(np.ascontiguousarray(image[::-1]).astype(order + "f4").tobytes())
    return path
