"""automl.ray_temp: Ray's session files live in <run_dir>/ray, reached through a short link when the run
folder is too deep for unix sockets; what a dead driver left behind is removed, a live one's is not."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from automl.tune.ray_temp import OWNER_FILE, SOCKET_ROOM, RayTempError, claim, ray_temp, release, remove_stale

DEEP = "deep/" + "x" * 60 + "/run"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_short_run_folder_is_given_to_ray_directly(tmp_path):
    temp = ray_temp("/r")
    assert temp.files == temp.address and str(temp.address) == "/r/ray" and temp.link is None


def test_a_deep_run_folder_keeps_its_files_behind_a_short_link(tmp_path):
    temp = claim(ray_temp(tmp_path / DEEP, link_root=tmp_path))
    try:
        assert temp.files == (tmp_path / DEEP / "ray").resolve() and temp.files.is_dir()
        assert temp.address.parent == tmp_path and temp.address.name.startswith("sa-")
        assert temp.address.is_symlink() and temp.address.resolve() == temp.files
        assert json.loads((temp.files / OWNER_FILE).read_text())["pid"] == os.getpid()
        (temp.address / "session_x").mkdir()  # what Ray writes through the link lands in the run folder
        assert (temp.files / "session_x").is_dir()
        assert ray_temp(tmp_path / DEEP, link_root=tmp_path) == temp  # the same run folder, the same link
    finally:
        release(temp)
    assert not temp.files.exists() and not temp.address.is_symlink()


def test_the_default_link_is_short_enough_for_ray_sockets(tmp_path):
    temp = ray_temp(tmp_path / DEEP)
    assert str(temp.address).startswith("/tmp/sa-") and len(str(temp.address)) <= SOCKET_ROOM
    assert temp.files.parent == (tmp_path / DEEP).resolve()


def test_claim_clears_what_a_dead_driver_left_and_refuses_a_live_one(tmp_path):
    temp = ray_temp(tmp_path / DEEP, link_root=tmp_path)
    temp.files.mkdir(parents=True)
    (temp.files / "session_old").mkdir()
    (temp.files / OWNER_FILE).write_text(json.dumps({"pid": _dead_pid()}))
    claim(temp)
    assert not (temp.files / "session_old").exists()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (temp.files / OWNER_FILE).write_text(json.dumps({"pid": live.pid}))
        with pytest.raises(RayTempError, match=f"running sweep driver \\(pid {live.pid}\\).*kill {live.pid}"):
            claim(temp)
        assert temp.files.is_dir()  # a live driver's files are never removed
    finally:
        live.kill()
        live.wait()
    release(temp)


def test_remove_stale_takes_only_dead_drivers_leftovers(tmp_path):
    runs = tmp_path / "runs"
    dead, live, dangling = (ray_temp(runs / n / DEEP, link_root=tmp_path) for n in ("dead", "live", "dangling"))
    for temp in (dead, live, dangling):
        claim(temp)
    (dead.files / OWNER_FILE).write_text(json.dumps({"pid": _dead_pid()}))
    release(dangling)
    dangling.address.symlink_to(dangling.files)  # a link whose run folder was deleted
    foreign = tmp_path / "sa-foreign"
    foreign.symlink_to(tmp_path)  # not a <run_dir>/ray link: not ours
    gone = remove_stale(link_root=tmp_path)
    assert sorted(gone) == sorted([dead.address, dangling.address])
    assert not dead.files.exists() and not dead.address.is_symlink()
    assert live.files.is_dir() and live.address.is_symlink() and foreign.is_symlink()
    release(live)
