import json

import pytest

from stereo.atomic_io import atomic_path, atomic_write_json, atomic_write_text


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "a.json"
    atomic_write_json(target, {"x": 1})
    atomic_write_json(target, {"x": 2})
    assert json.loads(target.read_text()) == {"x": 2}
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]


def test_failed_write_keeps_old_content(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_published_file_has_the_umask_mode_not_mkstemp_0600(tmp_path):
    import os
    old = os.umask(0o022)
    try:
        target = atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o644


def test_a_checkpoint_written_by_safetensors_is_published_with_the_umask_mode(tmp_path):
    """safetensors' save_file replaces the temp file (a new 0600 inode): the mode is set after the writer."""
    import os

    import torch

    from stereo.checkpoints import save_checkpoint

    old = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "m", {"w": torch.zeros(2)}, config={"model_type": "FoundationStereo"})
    finally:
        os.umask(old)
    assert path.suffix == ".safetensors" and path.stat().st_mode & 0o777 == 0o644
