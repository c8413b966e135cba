import cv2
import numpy as np
import pytest

from stereo.errors import DataError
from stereo.data.formats.png16 import (
    CRESTEREO_SCALE,
    KITTI_SCALE,
    read_crestereo_disparity,
    read_kitti_disparity,
    write_png16_disparity,
)


def test_kitti_raw_over_256_zero_invalid(tmp_path):
    raw = np.array([[0, 256, 513], [65535, 1, 0]], dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "k.png"), raw)
    disp = read_kitti_disparity(tmp_path / "k.png")
    assert disp.dtype == np.float32
    np.testing.assert_array_equal(disp, [[np.inf, 1.0, 513 / 256], [65535 / 256, 1 / 256, np.inf]])


def test_crestereo_raw_over_32_and_zero_is_invalid_unlike_tao(tmp_path):
    raw = np.array([[0, 32, 48]], dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "c.png"), raw)
    np.testing.assert_array_equal(read_crestereo_disparity(tmp_path / "c.png"), [[np.inf, 1.0, 1.5]])


@pytest.mark.parametrize("scale,reader", [(KITTI_SCALE, read_kitti_disparity),
                                          (CRESTEREO_SCALE, read_crestereo_disparity)])
def test_round_trip_to_encoding_precision(tmp_path, scale, reader):
    disp = np.array([[0.5, 10.25, np.inf], [0.0, 100.0, 200.7]], dtype=np.float32)
    write_png16_disparity(tmp_path / "d.png", disp, scale)
    out = reader(tmp_path / "d.png")
    valid = np.isfinite(disp) & (disp > 0)
    assert np.array_equal(np.isfinite(out), valid)
    assert np.abs(out[valid] - disp[valid]).max() <= 0.5 / scale + 1e-6


def test_rgb_png_given_to_16bit_reader_says_which_dataset_to_use(tmp_path):
    cv2.imwrite(str(tmp_path / "rgb.png"), np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(DataError, match="rgb.png.*16-bit.*FSD"):
        read_kitti_disparity(tmp_path / "rgb.png")
