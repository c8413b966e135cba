import cv2
import numpy as np
import pytest

from stereo.errors import DataError
from stereo.data.formats.images import read_image, read_image_size, write_image


def _rgb(h=4, w=6):
    return np.random.default_rng(0).integers(0, 256, (h, w, 3)).astype(np.uint8)


def test_png_round_trip_rgb_order(tmp_path):
    rgb = _rgb()
    rgb[0, 0] = [255, 0, 0]
    write_image(tmp_path / "a.png", rgb)
    out = read_image(tmp_path / "a.png")
    assert out.dtype == np.float32 and out.shape == (4, 6, 3)
    np.testing.assert_array_equal(out, rgb)
    assert out[0, 0].tolist() == [255, 0, 0]
    assert read_image_size(tmp_path / "a.png") == (4, 6)


def test_jpeg_is_read_approximately(tmp_path):
    smooth = np.full((16, 16, 3), [40, 120, 200], np.uint8)
    write_image(tmp_path / "a.jpg", smooth)
    assert np.abs(read_image(tmp_path / "a.jpg") - smooth).max() <= 3


def test_greyscale_is_tiled_to_three_channels(tmp_path):
    grey = _rgb()[..., 0]
    write_image(tmp_path / "g.png", grey)
    out = read_image(tmp_path / "g.png")
    assert out.shape == (4, 6, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey)


def test_rgba_alpha_is_dropped(tmp_path):
    rgba = np.concatenate([_rgb(), np.full((4, 6, 1), 7, np.uint8)], axis=-1)
    write_image(tmp_path / "a.png", rgba)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgba[..., :3])


def test_16bit_image_is_scaled_to_8bit_range(tmp_path):
    raw = np.array([[0, 257, 65535]], dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "w.png"), np.stack([raw] * 3, axis=-1))
    np.testing.assert_allclose(read_image(tmp_path / "w.png")[..., 0], [[0.0, 1.0, 255.0]], rtol=1e-6)


def test_unsupported_extension_and_corrupt_file(tmp_path):
    (tmp_path / "a.bmp").write_bytes(b"BM")
    with pytest.raises(DataError, match="a.bmp.*extension"):
        read_image(tmp_path / "a.bmp")
    (tmp_path / "b.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="b.png"):
        read_image(tmp_path / "b.png")
    with pytest.raises(DataError, match="b.png"):
        read_image_size(tmp_path / "b.png")
