import numpy as np
import pytest

from stereo.errors import DataError
from stereo.data.formats.pfm import read_pfm, read_pfm_size, write_pfm


def _ramp(h=5, w=7):
    disp = np.arange(h * w, dtype=np.float32).reshape(h, w) / 3.0
    disp[1, 2] = np.inf
    return disp


@pytest.mark.parametrize("scale", [-1.0, 1.0, -0.003922, 2.5])
def test_round_trip_any_byte_order_and_scale_magnitude(tmp_path, scale):
    disp = _ramp()
    write_pfm(tmp_path / "d.pfm", disp, scale=scale)
    out = read_pfm(tmp_path / "d.pfm")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, disp)  # scale magnitude ignored, inf kept


def test_big_endian_bytes_and_bottom_up_rows_hand_written(tmp_path):
    # 2x1 map written by hand: big-endian, rows bottom-up -> the first stored row is the bottom one
    data = b"Pf\n1 2\n1.0\n" + np.array([7.0, 3.0], dtype=">f4").tobytes()
    (tmp_path / "h.pfm").write_bytes(data)
    np.testing.assert_array_equal(read_pfm(tmp_path / "h.pfm"), [[3.0], [7.0]])


def test_little_endian_with_middlebury_scale_hand_written(tmp_path):
    data = b"Pf\n2 1\n-0.003922\n" + np.array([1.5, 2.5], dtype="<f4").tobytes()
    (tmp_path / "m.pfm").write_bytes(data)
    np.testing.assert_array_equal(read_pfm(tmp_path / "m.pfm"), [[1.5, 2.5]])


def test_three_channel_pfm_yields_first_channel(tmp_path):
    rgb = np.stack([_ramp(), _ramp() + 100, _ramp() + 200], axis=-1)
    write_pfm(tmp_path / "c.pfm", rgb)
    np.testing.assert_array_equal(read_pfm(tmp_path / "c.pfm"), _ramp())
    assert read_pfm_size(tmp_path / "c.pfm") == (5, 7)


def test_truncated_and_bad_magic_raise_with_path(tmp_path):
    write_pfm(tmp_path / "t.pfm", _ramp())
    raw = (tmp_path / "t.pfm").read_bytes()
    (tmp_path / "t.pfm").write_bytes(raw[:-8])
    with pytest.raises(DataError, match="t.pfm.*truncated"):
        read_pfm(tmp_path / "t.pfm")
    (tmp_path / "p.pfm").write_bytes(b"P6\n1 1\n255\n\0\0\0")
    with pytest.raises(DataError, match="p.pfm.*not a PFM"):
        read_pfm(tmp_path / "p.pfm")
