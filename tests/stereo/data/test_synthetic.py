import cv2
import numpy as np
import pytest

from stereo.data.synthetic import LAYOUTS, generate, main, make_scene


def _warp_right_to_left(right, disp):
    h, w = disp.shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(right, x - disp, y, cv2.INTER_LINEAR)


def _interior(scene):
    """Non-occluded pixels away from depth edges (bilinear lookups there mix two surfaces)."""
    d = scene.disp
    edge = np.zeros_like(scene.nocc)
    edge[:, 1:] |= np.abs(np.diff(d, axis=1)) > 1
    edge[:, :-1] |= np.abs(np.diff(d, axis=1)) > 1
    x = np.arange(d.shape[1])[None, :]
    ok = scene.nocc & ~edge & (x - d >= 2)
    return cv2.erode(ok.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gt_disparity_warps_right_onto_left(seed):
    scene = make_scene(48, 96, 24, np.random.default_rng(seed))
    err = np.abs(_warp_right_to_left(scene.right, scene.disp) - scene.left).mean(axis=-1)
    m = _interior(scene)
    assert m.mean() > 0.5
    assert err[m].mean() < 1.0 and np.percentile(err[m], 99) < 6.0
    # the occluded pixels really are not explained by the GT (the mask is not trivially all-true)
    assert (~scene.nocc).any() and err[~scene.nocc].mean() > 5 * err[m].mean()


def test_a_wrong_disparity_does_not_warp():
    scene = make_scene(48, 96, 24, np.random.default_rng(0))
    m = _interior(scene)
    good = np.abs(_warp_right_to_left(scene.right, scene.disp) - scene.left).mean(axis=-1)
    bad = np.abs(_warp_right_to_left(scene.right, scene.disp + 1.5) - scene.left).mean(axis=-1)
    assert bad[m].mean() > 3.0 and bad[m].mean() > 4 * good[m].mean()  # textures are matchable


def test_occlusion_mask_matches_planar_geometry():
    """Occluded pixels are exactly those whose right-view position is covered by a nearer layer."""
    scene = make_scene(40, 80, 20, np.random.default_rng(5))
    h, w = scene.disp.shape
    for y in range(0, h, 7):
        for x in range(0, w, 3):
            d = scene.disp[y, x]
            xr = x - d
            nearer = False
            for layer in scene.layers:
                u = (xr + layer.b * y + layer.c) / (1 - layer.a)
                if layer.covers(np.array(u), np.array(float(y))) and layer.disparity(u, y) > d + 1e-6:
                    nearer = True
            assert scene.nocc[y, x] == (xr >= 0 and not nearer)


def test_deterministic_for_a_seed(tmp_path):
    a = make_scene(32, 64, 16, np.random.default_rng([3, 0]))
    b = make_scene(32, 64, 16, np.random.default_rng([3, 0]))
    assert np.array_equal(a.left, b.left) and np.array_equal(a.disp, b.disp)
    ann1 = generate(tmp_path / "1", "fsd", n=2, height=32, width=64, max_disparity=16, seed=3)
    ann2 = generate(tmp_path / "2", "fsd", n=2, height=32, width=64, max_disparity=16, seed=3)
    for rel in ("fsd/left/rgb/000001.png", "fsd/left/disparity/000001.png"):
        assert (ann1.parent / rel).read_bytes() == (ann2.parent / rel).read_bytes()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_writes_existing_relative_paths(tmp_path, layout):
    ann = generate(tmp_path, layout, n=2, height=24, width=40, max_disparity=8, seed=0)
    lines = ann.read_text().splitlines()
    assert len(lines) == 2
    for line in lines:
        cols = line.split()
        assert len(cols) == {"middlebury": 4, "eth3d": 4}.get(layout, 3)
        assert all(not c.startswith("/") and (ann.parent / c).is_file() for c in cols)


def test_kitti_trees_hold_both_gt_flavours(synthetic_tree):
    root15 = synthetic_tree("kitti2015").parent / "training"
    assert {p.name for p in root15.iterdir()} == {"image_2", "image_3", "disp_occ_0", "disp_noc_0"}
    root12 = synthetic_tree("kitti2012").parent / "training"
    assert {p.name for p in root12.iterdir()} == {"colored_0", "colored_1", "image_0", "image_1", "disp_occ",
                                                  "disp_noc"}


def test_cli(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--layout", "generic", "--n", "1", "--height", "16", "--width", "32",
                 "--max-disparity", "8", "--columns", "2"]) == 0
    assert "generic.txt" in capsys.readouterr().out
    assert len((tmp_path / "generic.txt").read_text().split()) == 2
