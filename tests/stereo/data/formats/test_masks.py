import numpy as np
from PIL import Image

from stereo.data.formats.masks import read_nocc_mask, write_nocc_mask


def _nocc():
    m = np.zeros((3, 5), bool)
    m[1:, 2:] = True
    return m


def test_grey_round_trip(tmp_path):
    write_nocc_mask(tmp_path / "m.png", _nocc())
    np.testing.assert_array_equal(read_nocc_mask(tmp_path / "m.png"), _nocc())


def test_palette_mask_uses_palette_values_not_indices(tmp_path):
    write_nocc_mask(tmp_path / "p.png", _nocc(), palette=True)
    with Image.open(tmp_path / "p.png") as im:
        assert im.mode == "P"
        assert np.asarray(im).max() == 1  # raw indices are 0/1: reading them would mark nothing valid
    np.testing.assert_array_equal(read_nocc_mask(tmp_path / "p.png"), _nocc())


def test_only_exactly_255_is_non_occluded(tmp_path):
    Image.fromarray(np.array([[255, 254, 128, 0]], np.uint8)).save(tmp_path / "v.png")
    assert read_nocc_mask(tmp_path / "v.png").tolist() == [[True, False, False, False]]


def test_rgb_mask_uses_first_channel(tmp_path):
    rgb = np.zeros((1, 2, 3), np.uint8)
    rgb[0, 0] = [255, 0, 0]
    rgb[0, 1] = [0, 255, 255]
    Image.fromarray(rgb).save(tmp_path / "c.png")
    assert read_nocc_mask(tmp_path / "c.png").tolist() == [[True, False]]


def test_one_bit_mask_white_is_non_occluded(tmp_path):
    bits = np.array([[True, False, True], [False, True, False]])
    Image.fromarray(bits).save(tmp_path / "b.png")
    with Image.open(tmp_path / "b.png") as im:
        assert im.mode == "1"  # a real 1-bit PNG, not grey
    np.testing.assert_array_equal(read_nocc_mask(tmp_path / "b.png"), bits)
