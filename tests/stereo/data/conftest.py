"""Tiny synthetic trees in every layout, written once per test session."""
from __future__ import annotations

import pytest

from stereo.data.synthetic import generate

H, W, MAX_DISP = 32, 64, 16


@pytest.fixture(scope="session")
def synthetic_tree(tmp_path_factory):
    """layout -> annotation file of a 3-sample tree in that layout."""
    cache = {}

    def get(layout: str, n: int = 3, columns: int = 3):
        key = (layout, n, columns)
        if key not in cache:
            root = tmp_path_factory.mktemp(f"{layout}{n}_{columns}")
            cache[key] = generate(root, layout, n=n, height=H, width=W, max_disparity=MAX_DISP, seed=7,
                                  columns=columns)
        return cache[key]

    get.height, get.width, get.max_disparity = H, W, MAX_DISP
    return get
