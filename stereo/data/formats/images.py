"""Stereo images (PNG / JPEG) as float32 RGB `[H, W, 3]` in 0..255.

Greyscale is tiled to three channels (ETH3D, KITTI 2012 image_0), alpha is dropped, and 16-bit images
are scaled into the 8-bit range (x / 257 maps 65535 to 255), since the networks expect 0..255 input.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from stereo.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def _check_extension(path: str | os.PathLike) -> None:
    if Path(path).suffix.lower() not in IMAGE_EXTENSIONS:
        raise DataError(f"{path}: unsupported image extension {Path(path).suffix!r}; use one of "
                        f"{', '.join(IMAGE_EXTENSIONS)}")


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk type + CRC every complete PNG ends with
_JPEG_END = b"\xff\xd9"
_JPEG_TAIL = 4096  # cameras may append a few bytes after the end-of-image marker


def png_header(path: str | os.PathLike) -> tuple[int, int] | None:
    """(bit depth, colour type) from a PNG's IHDR (0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA), or
    None when the file is not a PNG."""
    with open(path, "rb") as fh:
        head = fh.read(26)
    if len(head) < 26 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def check_complete(path: str | os.PathLike, what: str = "") -> None:
    """Refuse a truncated PNG/JPEG before a decoder sees it: libpng/libjpeg would print their own
    warnings on stderr and cv2 returns None (PNG) or a partly grey image (JPEG)."""
    suffix = Path(path).suffix.lower()
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            if suffix == ".png":
                fh.seek(max(0, size - len(_PNG_END)))
                complete = fh.read() == _PNG_END
            elif suffix in (".jpg", ".jpeg"):
                fh.seek(max(0, size - _JPEG_TAIL))
                complete = _JPEG_END in fh.read()
            else:
                return
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc}); check that it exists and is "
                        "readable") from None
    if not complete:
        raise DataError(f"{path}: truncated {suffix[1:].upper()} ({size} bytes, no end marker); check that the "
                        f"file is a complete {what or 'PNG/JPEG'} (re-copy or re-export it)")


def read_image(path: str | os.PathLike) -> np.ndarray:
    _check_extension(path)
    check_complete(path)
    raw = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DataError(f"{path}: cannot be decoded as an image; check that the file is a complete PNG/JPEG")
    if raw.dtype == np.uint16:
        img = raw.astype(np.float32) / np.float32(257.0)
    elif raw.dtype == np.uint8:
        img = raw.astype(np.float32)
    else:
        raise DataError(f"{path}: unsupported image sample type {raw.dtype}; use 8- or 16-bit PNG/JPEG")
    if img.ndim == 2:
        return np.repeat(img[..., None], 3, axis=2)
    if img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)
    if img.shape[2] == 2:  # grey + alpha
        return np.repeat(img[..., :1], 3, axis=2)
    return np.ascontiguousarray(img[..., 2::-1])  # BGR(A) -> RGB, alpha dropped


def read_image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) from the file header only (cheap enough to check every file up front)."""
    _check_extension(path)
    try:
        with Image.open(path) as im:
            w, h = im.size
    except (OSError, SyntaxError) as exc:
        raise DataError(f"{path}: not a readable image ({exc}); check that the file is a complete "
                        "PNG/JPEG") from None
    return h, w


def write_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write RGB `[H, W, 3]` or grey `[H, W]`; floats are rounded and clipped to 0..255, uint16 kept."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.asarray(image)
    if image.dtype not in (np.uint8, np.uint16):
        image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] >= 3:
        channels = image[..., 2::-1] if image.shape[2] == 3 else image[..., [2, 1, 0, 3]]
        image = np.ascontiguousarray(channels)
    if not cv2.imwrite(os.fspath(path), image):
        raise OSError(f"could not write {path}")
    return path
