import cv2
import numpy as np
import pytest

from stereo.errors import DataError
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


@pytest.mark.parametrize("raw, names", [
    (np.full((3, 3), 1000, np.uint16), "16-bit grey PNG.*use dataset_name Kitti or Crestereo"),
    (np.full((3, 3), 7, np.uint8), "8-bit grey PNG.*no dataset_name decodes it.*pfm"),
])
def test_16bit_or_grey_png_is_rejected_not_misdecoded(tmp_path, raw, names):
    cv2.imwrite(str(tmp_path / "x.png"), raw)
    with pytest.raises(DataError, match=f"x.png: {names}"):
        read_rgb_disparity(tmp_path / "x.png")


def test_palette_png_is_refused_not_decoded_as_rgb_code(tmp_path):
    """cv2 expands a palette into colours that would decode to thousands of px (issue 11: 5222-14623 px
    for a 5-14 px map); the decoder refuses it and says which readers exist instead."""
    from PIL import Image

    im = Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4), mode="P")
    im.putpalette([v for i in range(256) for v in (i, 255 - i, i // 2)])
    im.save(tmp_path / "disp0.png")
    with pytest.raises(DataError, match="disp0.png: palette .*PNG, not the RGB disparity encoding.*no dataset_name"):
        read_rgb_disparity(tmp_path / "disp0.png")


def test_truncated_png_is_one_error_without_libpng_noise(tmp_path, capfd):
    write_rgb_disparity(tmp_path / "d.png", np.full((40, 50), 3.5, np.float32))
    data = (tmp_path / "d.png").read_bytes()
    (tmp_path / "d.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="d.png: truncated PNG"):
        read_rgb_disparity(tmp_path / "d.png")
    assert capfd.readouterr().err == ""  # libpng never got to print its own line
