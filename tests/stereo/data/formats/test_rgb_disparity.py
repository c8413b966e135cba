import cv2
import numpy as np
import pytest

from stereo.data.errors import DataError
from stereo.data.formats.rgb_disparity import encode_rgb_disparity, read_rgb_disparity, write_rgb_disparity


def test_decode_uses_base_255_hand_computed(tmp_path):
    rgb = np.array([[[0, 0, 0], [0, 1, 0], [1, 2, 3]]], dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "d.png"), rgb[..., ::-1])  # cv2 writes BGR
    disp = read_rgb_disparity(tmp_path / "d.png")
    np.testing.assert_allclose(disp, [[np.inf, 255 / 1000, (65025 + 2 * 255 + 3) / 1000]], rtol=1e-6)


def test_round_trip_to_millipixel(tmp_path):
    disp = np.array([[0.001, 1.234, 191.999], [np.inf, 0.0, 415.5]], dtype=np.float32)
    write_rgb_disparity(tmp_path / "d.png", disp)
    out = read_rgb_disparity(tmp_path / "d.png")
    valid = np.isfinite(disp) & (disp > 0)
    assert np.array_equal(np.isfinite(out), valid)
    np.testing.assert_allclose(out[valid], disp[valid], atol=5e-4)
    assert encode_rgb_disparity(np.array([[1.0]]))[0, 0].tolist() == [0, 3, 235]  # 1000 = 3*255 + 235


@pytest.mark.parametrize("raw", [np.full((3, 3), 1000, np.uint16), np.full((3, 3), 7, np.uint8)])
def test_16bit_or_grey_png_is_rejected_not_misdecoded(tmp_path, raw):
    cv2.imwrite(str(tmp_path / "x.png"), raw)
    with pytest.raises(DataError, match="x.png.*8-bit 3-channel.*Kitti or Crestereo"):
        read_rgb_disparity(tmp_path / "x.png")
